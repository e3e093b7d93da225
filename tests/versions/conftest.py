"""Fixtures of the versions tests: a viewer with only the view permissions, and an API client for it."""
import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from tests.factories import make_endpoint


@pytest.fixture
def endpoint(db):  # type: ignore[no-untyped-def]
    return make_endpoint(name="local")


@pytest.fixture
def viewer_api(django_user_model) -> APIClient:  # type: ignore[no-untyped-def]
    """Authenticated with the view permissions of blocks, payloads and workflows, and nothing else."""
    viewer = django_user_model.objects.create_user("viewer", password="pw-for-tests-only")
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_block", "view_payload", "view_workflow"]))
    client = APIClient()
    client.force_authenticate(viewer)
    return client


@pytest.fixture
def anonymous_versions_client() -> APIClient:
    return APIClient()
