from django.urls import path

from llm import endpoint_views

urlpatterns = [
    path("", endpoint_views.endpoint_list, name="endpoint-list"),
    path("new/", endpoint_views.endpoint_new, name="endpoint-new"),
    path("<int:pk>/", endpoint_views.endpoint_edit, name="endpoint-edit"),
    path("<int:pk>/delete/", endpoint_views.endpoint_delete, name="endpoint-delete"),
    path("<int:pk>/test/", endpoint_views.endpoint_test, name="endpoint-test"),
]
