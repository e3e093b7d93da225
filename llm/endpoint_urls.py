from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from llm import endpoint_views

urlpatterns = [
    path("", endpoint_views.endpoint_list, name="endpoint-list"),
    path("new/", endpoint_views.endpoint_new, name="endpoint-new"),
    path("<id:pk>/", endpoint_views.endpoint_edit, name="endpoint-edit"),
    path("<id:pk>/delete/", endpoint_views.endpoint_delete, name="endpoint-delete"),
    path("<id:pk>/test/", endpoint_views.endpoint_test, name="endpoint-test"),
    path("<id:pk>/capabilities/", endpoint_views.endpoint_capability_set, name="endpoint-capability-set"),
    path("<id:pk>/capabilities/relearn/", endpoint_views.endpoint_capabilities_relearn,
         name="endpoint-capabilities-relearn"),
]
