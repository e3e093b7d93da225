"""The API of what an endpoint's servers accept, under /api/endpoints/<id>/capabilities/.

Model names may contain "/" and ":" (meta-llama/Llama-3.1-8B:q4), so they are a path converter's
tail, not a router's lookup; "reset/" comes first and also answers for a model named "reset".
"""
from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from llm import api

urlpatterns = [
    path("", api.EndpointCapabilityListView.as_view(), name="api-endpoint-capabilities"),
    path("reset/", api.EndpointCapabilityResetView.as_view(), {"model": "reset"}, name="api-endpoint-capabilities-reset"),
    path("<path:model>/", api.EndpointCapabilityView.as_view(), name="api-endpoint-capability"),
]
