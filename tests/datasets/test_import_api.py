"""/api/datasets/{id}/import/: a file becomes one whole version, or every bad input is a 400 naming the
line or field and nothing is kept."""
from __future__ import annotations

import tracemalloc

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from datasets.models import DatasetItem
from tests.datasets.conftest import make_dataset, stored, upload

pytestmark = pytest.mark.django_db


def test_a_csv_becomes_a_version_with_expected_and_metadata(api: APIClient) -> None:
    dataset = make_dataset()
    content = ("\ufeffquestion,lang,expected,meta.source,metadata\n"
               "2+2,en,4,quiz,\"{\"\"level\"\": 1}\"\n"
               "\"a, b\",fr,,book,\n").encode()
    response = upload(api, dataset, content, message="first upload")
    assert response.status_code == 201, response.data
    assert (response.data["number"], response.data["row_count"], response.data["columns"]) == (1, 2, ["question", "lang"])
    assert [(item.inputs, item.expected, item.metadata) for item in DatasetItem.objects.order_by("position")] == [
        ({"question": "2+2", "lang": "en"}, "4", {"source": "quiz", "level": 1}),
        ({"question": "a, b", "lang": "fr"}, None, {"source": "book"})]
    again = upload(api, dataset, content)
    assert (again.status_code, again.data["number"], again.data["created"]) == (200, 1, False)


def test_a_jsonl_file_with_an_inputs_object_or_flat_keys(api: APIClient) -> None:
    dataset = make_dataset()
    content = (b'{"inputs": {"q": "x"}, "expected": {"answer": 1}, "metadata": {"k": "v"}}\n\n'
               b'{"q": "y", "expected": "z"}\n')
    response = upload(api, dataset, content, name="cases.jsonl")
    assert response.status_code == 201, response.data
    assert [(item.inputs, item.expected, item.metadata) for item in DatasetItem.objects.order_by("position")] == [
        ({"q": "x"}, {"answer": 1}, {"k": "v"}), ({"q": "y"}, "z", {})]


@pytest.mark.parametrize(("name", "content", "field", "message"), [
    ("a.csv", b"a,b,c\n1,2,3\n1,2,3,4\n", "file", "line 3: 4 fields where the header has 3."),
    ("a.csv", b"a,b,a\n1,2,3\n", "file", "header: column “a” appears twice."),
    ("a.csv", b"a,b\n1,2\n\xff\xfe,3\n", "file", "line 3: not UTF-8 text."),
    ("a.csv", b"a,b\n", "file", "The file has no rows."),
    ("a.csv", b"", "file", "The file has no rows."),
    ("a.jsonl", b"", "file", "The file has no rows."),
    ("a.jsonl", b'{"q": 1}\n[1, 2]\n', "file", "line 2: not a JSON object."),
    ("a.jsonl", b'{"q": 1}\n{"q": \n', "file", "line 2: not valid JSON (Expecting value)."),
    ("a.jsonl", b'{"q": 1, "metadata": 3}\n', "file", "line 1: “metadata” is not a JSON object."),
    ("a.csv", b'a,metadata\n1,[1]\n', "file", "line 2: column “metadata” is not a JSON object."),
    ("a.jsonl", b'{"q": "a\\u0000b"}\n', "file", "line 1: contains a NUL character (\\u0000)."),
    ("a.jsonl", b'{"q": "\\ud800"}\n', "file", "line 1: q contains a lone surrogate, which is not valid Unicode text."),
    ("a.csv", b"a\n1\x002\n", "file", "line 2: contains a NUL character."),
    ("a.txt", b"a\n1\n", "format", "Say csv or jsonl: the file's name does not tell."),
])
def test_a_bad_file_is_a_400_naming_the_line_and_nothing_is_kept(api: APIClient, name: str, content: bytes,
                                                                  field: str, message: str) -> None:
    dataset = make_dataset()
    # Many good rows first: the bad line comes after several batches were written.
    if name == "a.csv" and content.startswith(b"a,b,c\n"):
        content = b"a,b,c\n" + b"1,2,3\n" * 2500 + b"1,2,3,4\n"
        message = "line 2502: 4 fields where the header has 3."
    response = upload(api, dataset, content, name=name)
    assert response.status_code == 400, response.data
    assert response.data == {field: [message]}
    assert stored() == (0, 0, 0)


def test_an_expected_column_the_header_lacks_is_named(api: APIClient) -> None:
    response = upload(api, make_dataset(), b"a\n1\n", expected_column="answer")
    assert (response.status_code, response.data) == (400, {"expected_column": ["The header has no column “answer”."]})


@override_settings(DATASET_UPLOAD_MAX_BYTES=1000)
def test_a_file_over_the_limit_is_refused_naming_the_file(api: APIClient) -> None:
    dataset = make_dataset()
    response = upload(api, dataset, b"a\n" + b"1\n" * 1000)
    assert response.status_code == 413
    assert response.data == {"file": ["The file is larger than 1000 bytes (DATASET_UPLOAD_MAX_BYTES)."]}
    huge = api.post(f"/api/datasets/{dataset.pk}/import/", b"x", content_type="multipart/form-data; boundary=b",
                    CONTENT_LENGTH=str(2 * 1024**3))
    assert huge.status_code == 413 and "file" in huge.data
    assert stored() == (0, 0, 0)


def test_a_100000_row_csv_is_streamed(api: APIClient) -> None:
    dataset = make_dataset()
    rows = "".join(f"question number {index},context {index % 97},{index * 2}\n" for index in range(100_000))
    content = ("question,context,expected\n" + rows).encode()
    del rows
    tracemalloc.start()
    try:
        response = upload(api, dataset, content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.data
    assert response.data["row_count"] == 100_000
    # The file is ~4.5 MB and its rows as Python objects would be far more: batches keep the peak small.
    print(f"peak traced: {peak / 2**20:.1f} MiB")
    assert peak < 100 * 1024 * 1024, peak
    last = DatasetItem.objects.get(version__dataset=dataset, position=99_999)
    assert (last.inputs, last.expected) == ({"question": "question number 99999", "context": "context 89"}, "199998")
