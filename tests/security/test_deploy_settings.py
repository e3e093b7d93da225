"""Production settings (DEBUG off) pass Django's deployment checklist with no warnings."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "TEST_DATABASE_NAME")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**environment, **env}, timeout=120)


def test_check_deploy_passes_with_no_warnings_when_debug_is_off():
    result = manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="0", METRICS_TOKEN="t", SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_responses_carry_hsts_and_redirect_to_https():
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "c = Client()\n"
        "r = c.get('/api/blocks/', HTTP_HOST='localhost')\n"
        "print(r.status_code, r['Location'])\n"
        "r = c.get('/healthz', HTTP_HOST='localhost', HTTP_X_FORWARDED_PROTO='https')\n"
        "print(r.status_code, r['Strict-Transport-Security'])\n"
        "from django.conf import settings\n"
        "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)\n"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "TEST_DATABASE_NAME")}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**environment, "DEBUG": "0", "METRICS_TOKEN": "t", "SECRET_KEY": secrets.token_urlsafe(50),
                                 "DJANGO_SETTINGS_MODULE": "orchestrator.settings"})
    assert result.returncode == 0, result.stderr
    redirect, hsts, cookies = result.stdout.splitlines()
    assert redirect == "301 https://localhost/api/blocks/"
    assert hsts == "200 max-age=31536000; includeSubDomains; preload"
    assert cookies == "True True"


def test_each_production_guard_can_be_turned_off_from_the_environment():
    result = manage("shell", "-c", "from django.conf import settings as s; "
                    "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)",
                    DEBUG="0", METRICS_TOKEN="t", SECRET_KEY=secrets.token_urlsafe(50), SECURE_SSL_REDIRECT="0", SECURE_HSTS_SECONDS="0",
                    SECURE_PROXY_SSL_HEADER="")
    assert result.stdout.splitlines()[-1].split() == ["False", "0", "None"], result.stderr
