from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from llm import views

urlpatterns = [
    path("", views.tester, name="llm-tester"),
    path("endpoints/<id:pk>/models/", views.endpoint_models, name="llm-endpoint-models"),
    path("stream/", views.tester_stream, name="llm-tester-stream"),
    path("connectivity/", views.connectivity_test, name="llm-connectivity-test"),
]
