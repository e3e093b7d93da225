"""The API error shape: a Conflict of any app is a 409 with its message and the body it adds."""
from typing import Any

from core.exceptions import Conflict, api_exception_handler


class _Taken(Conflict):
    def body(self) -> dict[str, Any]:
        return {"holder": "someone else"}


def test_a_conflict_is_a_409_with_its_message_and_body() -> None:
    response = api_exception_handler(_Taken("The seat is taken."), {})
    assert response is not None and response.status_code == 409
    assert response.data == {"detail": "The seat is taken.", "holder": "someone else"}


def test_a_plain_conflict_has_the_detail_alone() -> None:
    response = api_exception_handler(Conflict("No."), {})
    assert response is not None and (response.status_code, response.data) == (409, {"detail": "No."})
