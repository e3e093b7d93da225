from django.urls import path

from runs import views

urlpatterns = [
    path("", views.run_list, name="home"),
    path("runs/", views.run_list, name="run-list"),
    path("runs/compare/", views.run_compare, name="run-compare"),
    path("runs/stats/", views.run_stats, name="run-stats"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/charts/", views.run_charts, name="run-charts"),
    path("runs/<int:pk>/export.json", views.run_export, name="run-export"),
    path("runs/<int:pk>/replay/", views.run_replay, name="run-replay"),
    path("runs/<int:pk>/row/", views.run_row, name="run-row"),
    path("runs/<int:pk>/steps/<int:index>/prompt/", views.run_step_prompt, name="run-step-prompt"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:pk>/rerun/", views.run_rerun, name="run-rerun"),
    path("run/", views.run_pick, name="run-pick"),
    path("run/<int:workflow_id>/", views.run_start, name="run-start"),
]
