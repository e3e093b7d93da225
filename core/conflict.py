"""Conflict: a write refused because of the state of other rows (the API answers 409).

Kept apart from the API's exception handler so that services raising it do not import DRF.
"""
from typing import Any


class Conflict(Exception):
    """A write refused because of the state of other rows: a 409 with the message as `detail`.

    A subclass adds what the client needs to resolve it through `body()` (blocks.services.InUse
    names what still uses the object); the handler knows no app's exception.
    """

    def body(self) -> dict[str, Any]:
        return {}
