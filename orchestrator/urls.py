from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from blocks.api import BlockViewSet
from core import health
from datasets.api import DatasetViewSet
from evaluations.api import EvaluationViewSet, PreferenceViewSet, ReviewViewSet, RunChecksViewSet
from experiments.api import ExperimentViewSet
from experiments.promptfoo_api import PromptfooExportView, PromptfooImportView
from llm.api import EndpointViewSet
from observability.views import metrics
from payloads.api import PayloadViewSet
from prices.api import PriceViewSet
from runs.api import RunViewSet, WorkflowRunsView
from runs.release_api import ReleaseViewSet
from runs.reprice_urls import api_urlpatterns as reprice_api_urls
from workflows.api import WorkflowViewSet

# URL names of the API all start with "api-": the pages' names ("run-list", "run-detail",
# "payload-preview", "workflow-export") would otherwise clash with the router's, and reverse()
# then finds whichever came last (the API root linked "runs" to the HTML page).
router = DefaultRouter()
router.register("endpoints", EndpointViewSet, basename="api-endpoint")
router.register("blocks", BlockViewSet, basename="api-block")
router.register("payloads", PayloadViewSet, basename="api-payload")
router.register("workflows", WorkflowViewSet, basename="api-workflow")
router.register("runs", RunViewSet, basename="api-run")
router.register("releases", ReleaseViewSet, basename="api-release")
router.register("prices", PriceViewSet, basename="api-price")
router.register("datasets", DatasetViewSet, basename="api-dataset")
router.register("evaluations", EvaluationViewSet, basename="api-evaluation")
router.register("run-checks", RunChecksViewSet, basename="api-run-checks")
router.register("experiments", ExperimentViewSet, basename="api-experiment")
router.register("reviews", ReviewViewSet, basename="api-review")
router.register("preferences", PreferenceViewSet, basename="api-preference")

urlpatterns = [
    path("admin/", admin.site.urls),
    # The product's own log-in: users need not be staff to build prompts and run workflows.
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/workflows/<int:pk>/runs/", WorkflowRunsView.as_view(), name="api-workflow-runs"),
    path("api/endpoints/<id:pk>/capabilities/", include("llm.api_urls")),
    path("api/", include("runs.release_api_urls")),
    path("api/reprice/", include(reprice_api_urls)),
    path("api/promptfoo/import/", PromptfooImportView.as_view(), name="api-promptfoo-import"),
    path("api/promptfoo/export/", PromptfooExportView.as_view(), name="api-promptfoo-export"),
    path("api/", include(router.urls)),
    path("api/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("llm/tester/", include("llm.urls")),
    path("endpoints/", include("llm.endpoint_urls")),
    path("blocks/", include("blocks.urls")),
    path("payloads/", include("payloads.urls")),
    path("workflows/", include("workflows.urls")),
    path("prices/reprice/", include("runs.reprice_urls")),  # before the Prices pages' own prices/ routes
    path("prices/", include("prices.urls")),
    path("datasets/", include("datasets.urls")),
    path("experiments/", include("experiments.urls")),
    path("reviews/", include("evaluations.urls")),
    path("", include("runs.release_urls")),  # /workflows/<id>/releases/..., labels, /runs/<id>/changes/
    path("", include("runs.urls")),
]

# daphne serves no static files: with DEBUG on, Django serves them (empty list otherwise).
urlpatterns += staticfiles_urlpatterns()
