"""The product's own log-in page: anyone with an account, staff or not, can sign in and out."""
import pytest

pytestmark = pytest.mark.django_db


def test_a_non_staff_user_logs_in_to_the_runs_page_and_out_again(client, django_user_model):
    from django.contrib.auth.models import Permission

    analyst = django_user_model.objects.create_user("analyst", password="a-long-passphrase")
    analyst.user_permissions.add(Permission.objects.get(codename="view_run"))
    redirect = client.get("/runs/")
    assert redirect.status_code == 302 and redirect["Location"] == "/accounts/login/?next=/runs/"
    page = client.get(redirect["Location"])
    assert page.status_code == 200 and b'name="username"' in page.content
    response = client.post("/accounts/login/", {"username": "analyst", "password": "a-long-passphrase", "next": "/runs/"})
    assert response.status_code == 302 and response["Location"] == "/runs/"
    assert client.get("/runs/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/runs/").status_code == 302


def test_a_wrong_password_shows_the_error_on_the_form(client, django_user_model):
    django_user_model.objects.create_user("analyst", password="a-long-passphrase")
    response = client.post("/accounts/login/", {"username": "analyst", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
