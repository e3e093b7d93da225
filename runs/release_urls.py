"""Routes of the Releases page, the release diff and "what changed since this run" (runs/release_views.py)."""
from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from runs import release_views as views

urlpatterns = [
    path("workflows/<id:pk>/releases/", views.workflow_releases, name="workflow-releases"),
    path("workflows/<id:pk>/releases/cut/", views.release_cut, name="release-cut"),
    path("workflows/<id:pk>/releases/<id:number>/diff/", views.release_diff, name="release-diff"),
    path("workflows/<id:pk>/labels/", views.label_create, name="label-create"),
    path("workflows/<id:pk>/labels/<str:name>/move/", views.label_move, name="label-move"),
    path("workflows/<id:pk>/labels/<str:name>/rollback/", views.label_rollback, name="label-rollback"),
    path("workflows/<id:pk>/labels/<str:name>/delete/", views.label_delete, name="label-delete"),
    path("runs/<id:pk>/changes/", views.run_changes, name="run-changes"),
]
