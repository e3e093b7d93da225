"""Routes of repricing: the page under /prices/reprice/ and the API under /api/reprice/ (orchestrator/urls.py)."""
from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from runs import reprice_api, reprice_views

urlpatterns = [
    path("", reprice_views.reprice, name="reprice"),
    path("<id:pk>/", reprice_views.reprice_job, name="reprice-job"),
]

api_urlpatterns = [
    path("", reprice_api.RepriceView.as_view(), name="api-reprice"),
    path("<id:pk>/", reprice_api.RepriceJobView.as_view(), name="api-reprice-job"),
]
