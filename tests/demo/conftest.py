from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command


@pytest.fixture
def seed_demo() -> Callable[..., str]:
    """Run `manage.py seed_demo` and return what it printed."""

    def run(*args: str) -> str:
        out = StringIO()
        call_command("seed_demo", *args, stdout=out)
        return out.getvalue()

    return run
