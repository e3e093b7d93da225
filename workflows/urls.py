from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from workflows import views

urlpatterns = [
    path("", views.workflow_builder, name="workflow-builder"),
    path("new/", views.workflow_new, name="workflow-new"),
    path("check/", views.workflow_check, name="workflow-check"),
    path("import/", views.workflow_import, name="workflow-import"),
    path("<id:pk>/", views.workflow_edit, name="workflow-edit"),
    path("<id:pk>/delete/", views.workflow_delete, name="workflow-delete"),
    path("<id:pk>/history/", views.workflow_history, name="workflow-history"),
    path("<id:pk>/history/<id:number>/restore/", views.workflow_history_restore, name="workflow-history-restore"),
    path("<id:pk>/export/", views.workflow_export, name="workflow-export"),
]
