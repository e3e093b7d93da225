from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from runs import views

urlpatterns = [
    path("", views.run_list, name="home"),
    path("runs/", views.run_list, name="run-list"),
    path("runs/compare/", views.run_compare, name="run-compare"),
    path("runs/stats/", views.run_stats, name="run-stats"),
    path("runs/<id:pk>/", views.run_detail, name="run-detail"),
    path("runs/<id:pk>/charts/", views.run_charts, name="run-charts"),
    path("runs/<id:pk>/export.json", views.run_export, name="run-export"),
    path("runs/<id:pk>/replay/", views.run_replay, name="run-replay"),
    path("runs/<id:pk>/row/", views.run_row, name="run-row"),
    path("runs/<id:pk>/steps/<id:index>/prompt/", views.run_step_prompt, name="run-step-prompt"),
    path("runs/<id:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<id:pk>/rerun/", views.run_rerun, name="run-rerun"),
    path("run/", views.run_pick, name="run-pick"),
    path("run/<id:workflow_id>/", views.run_start, name="run-start"),
]
