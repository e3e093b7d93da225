"""The response cache's admin: read-only, seen only with its view permission and the endpoints', purged
with its delete permission."""
import datetime

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from llm.models import CachedResponse
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db
LIST = "/admin/llm/cachedresponse/"


def staff(django_user_model, *perms: str) -> Client:
    person = django_user_model.objects.create_user(f"staff{django_user_model.objects.count()}", password="x",
                                                   is_staff=True)
    for perm in perms:
        person.user_permissions.add(Permission.objects.get(content_type__app_label="llm", codename=perm))
    client = Client()
    client.force_login(person)
    return client


def entries() -> list[CachedResponse]:
    endpoint = make_endpoint()
    now = timezone.now()
    return [CachedResponse.objects.create(key=f"{i:064d}", endpoint=endpoint, model="m", text=f"answer {i}",
                                          created_at=now, expires_at=now + datetime.timedelta(seconds=expires))
            for i, expires in enumerate([-5, 60, 60])]


def test_answers_are_hidden_without_the_view_permission_and_the_endpoints(django_user_model):
    entries()
    assert staff(django_user_model, "view_endpoint").get(LIST).status_code == 403
    assert staff(django_user_model, "view_cachedresponse").get(LIST).status_code == 403
    page = staff(django_user_model, "view_cachedresponse", "view_endpoint").get(LIST)
    assert page.status_code == 200 and f"{1:064d}"[:16] in page.content.decode()


def test_answers_are_read_only_and_purged_with_the_delete_permission(django_user_model):
    expired, kept, purged = entries()
    viewer = staff(django_user_model, "view_cachedresponse", "view_endpoint")
    assert viewer.get(f"{LIST}add/").status_code == 403
    shown = viewer.get(f"{LIST}{kept.pk}/change/")
    assert shown.status_code == 200 and "answer 1" in shown.content.decode() and 'name="text"' not in shown.content.decode()
    assert viewer.post(LIST, {"action": "purge", "_selected_action": [purged.pk]}).status_code == 200
    assert CachedResponse.objects.count() == 3  # the action is not offered without the delete permission
    purger = staff(django_user_model, "view_cachedresponse", "view_endpoint", "delete_cachedresponse")
    assert purger.post(LIST, {"action": "purge", "_selected_action": [purged.pk]}).status_code == 302
    assert sorted(CachedResponse.objects.values_list("pk", flat=True)) == [expired.pk, kept.pk]
    assert purger.post(LIST, {"action": "prune_expired", "_selected_action": [kept.pk]}).status_code == 302
    assert list(CachedResponse.objects.values_list("pk", flat=True)) == [kept.pk]
