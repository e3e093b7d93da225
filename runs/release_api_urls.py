"""Routes of releases and labels under /api/workflows/<id>/ (the releases themselves are a router entry).

Here rather than in workflows/, which may not import releases or runs."""
from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from runs import release_api

urlpatterns = [
    path("workflows/<id:pk>/releases/", release_api.WorkflowReleasesView.as_view(), name="api-workflow-releases"),
    path("workflows/<id:pk>/labels/", release_api.WorkflowLabelsView.as_view(), name="api-workflow-labels"),
    path("workflows/<id:pk>/labels/<str:name>/", release_api.WorkflowLabelView.as_view(), name="api-workflow-label"),
    path("workflows/<id:pk>/label-history/", release_api.WorkflowLabelHistoryView.as_view(),
         name="api-workflow-label-history"),
]
