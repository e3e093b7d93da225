"""datasets.services: versions numbered and hashed, identical content is no new version, stable row ids."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from datasets.models import DatasetItem
from datasets.services import case_line, dataset_rows_change, dataset_version_create
from tests.datasets.conftest import make_dataset, stored

pytestmark = pytest.mark.django_db

CASES = [{"inputs": {"q": "2+2"}, "expected": "4", "metadata": {}},
         {"inputs": {"q": "capital of France", "lang": "en"}, "expected": None, "metadata": {"src": "quiz"}}]


def items(version) -> list[tuple[int, dict, object]]:  # type: ignore[no-untyped-def]
    return [(item.row_id, item.inputs, item.expected) for item in DatasetItem.objects.filter(version=version)]


def test_versions_are_numbered_and_hashed_over_their_content() -> None:
    dataset = make_dataset()
    first, created = dataset_version_create(dataset=dataset, cases=iter(CASES), message="first")
    assert created and (first.number, first.row_count, first.columns) == (1, 2, ["q", "lang"])
    import hashlib
    assert first.content_hash == hashlib.sha256(b"".join(case_line(case) for case in CASES)).hexdigest()
    second, created = dataset_version_create(dataset=dataset, cases=iter(CASES[:1]))
    assert created and second.number == 2 and second.content_hash != first.content_hash


def test_identical_content_makes_no_new_version_and_leaves_no_rows_behind() -> None:
    dataset = make_dataset()
    first, _ = dataset_version_create(dataset=dataset, cases=iter(CASES))
    before = stored()
    again, created = dataset_version_create(dataset=dataset, cases=iter(CASES))
    assert not created and again.pk == first.pk
    assert stored() == before


def test_going_back_to_an_older_content_is_a_new_version() -> None:
    dataset = make_dataset()
    first, _ = dataset_version_create(dataset=dataset, cases=iter(CASES))
    dataset_version_create(dataset=dataset, cases=iter(CASES[:1]))
    third, created = dataset_version_create(dataset=dataset, cases=iter(CASES))
    assert created and third.number == 3 and third.content_hash == first.content_hash


def test_rows_keep_their_ids_across_edits() -> None:
    dataset = make_dataset()
    first, _ = dataset_version_create(dataset=dataset, cases=iter(CASES))
    (row_a, _, _), (row_b, _, _) = items(first)
    second, created = dataset_rows_change(dataset=dataset, change={row_a: {"expected": "four"}},
                                          add=[{"inputs": {"q": "new"}}], message="edit")
    assert created and second.number == 2
    assert items(second) == [(row_a, {"q": "2+2"}, "four"), (row_b, CASES[1]["inputs"], None),
                             (items(second)[2][0], {"q": "new"}, None)]
    assert items(second)[2][0] not in (row_a, row_b)
    third, _ = dataset_rows_change(dataset=dataset, delete=[row_a])
    assert [row for row, _, _ in items(third)] == [row_b, items(second)[2][0]]
    assert items(first) == [(row_a, {"q": "2+2"}, "4"), (row_b, CASES[1]["inputs"], None)]  # immutable


def test_a_change_naming_a_row_not_in_the_latest_version_is_refused_naming_it() -> None:
    dataset = make_dataset()
    dataset_version_create(dataset=dataset, cases=iter(CASES))
    before = stored()
    with pytest.raises(ValidationError) as caught:
        dataset_rows_change(dataset=dataset, change={999999: {"expected": "x"}}, delete=[888888])
    assert caught.value.message_dict == {"change": ["row 999999 is not in the latest version."],
                                         "delete": ["row 888888 is not in the latest version."]}
    with pytest.raises(ValidationError) as caught:
        dataset_rows_change(dataset=dataset, add=[{"inputs": {}}, {"inputs": {"q": "x"}, "colour": 1}])
    assert caught.value.message_dict == {"add": ["add[0].inputs: a JSON object with at least one input.",
                                                 "add[1]: unknown field “colour”."]}
    assert stored() == before


def test_an_error_while_streaming_leaves_nothing() -> None:
    dataset = make_dataset()

    def cases():  # type: ignore[no-untyped-def]
        for index in range(2500):
            yield {"inputs": {"n": str(index)}}
        raise ValidationError({"file": ["line 2501: broken."]})

    with pytest.raises(ValidationError):
        dataset_version_create(dataset=dataset, cases=cases())
    assert stored() == (0, 0, 0)
