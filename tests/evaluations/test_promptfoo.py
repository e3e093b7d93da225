"""promptfoo interchange: a promptfooconfig.yaml imported as blocks, one workflow with a release per prompt x
provider, a dataset of its tests and the experiment's assertions; exported back; hostile input refused."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from blocks.models import Block
from datasets.models import Dataset
from datasets.services import dataset_create, dataset_version_create
from experiments.models import Experiment
from experiments.promptfoo import promptfoo_export, promptfoo_import, provider_model
from payloads.models import Payload
from releases.models import Release
from tests.factories import make_endpoint
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

CONFIG = """\
description: Support answers
prompts:
  - "Answer the customer briefly: {{question}}"
  - raw: |
      [
        {"role": "system", "content": "You are a support agent for {{ product }}."},
        {"role": "user", "content": "{{question}}"}
      ]
    label: chat
providers:
  - openai:gpt-4o-mini
  - id: openai:chat:gpt-4o
    label: big
    config:
      temperature: 0.2
      max_tokens: 300
      apiKey: sk-should-never-be-read
defaultTest:
  vars:
    product: Acme
  assert:
    - type: not-contains
      value: "As an AI"
    - type: latency
      threshold: 5000
tests:
  - description: refund
    vars:
      question: How do I get a refund?
    assert:
      - type: icontains-any
        value: [refund, return]
      - type: not-contains
        value: sorry
  - vars:
      question: Where is my order?
      product: Acme Pro
    assert:
      - type: javascript
        value: output.length < 500
      - type: llm-rubric
        value: Is polite and gives a next step
  - vars:
      question: Cancel my plan
    assert:
      - type: contains
        value: cancel
        weight: 2
        metric: relevance
"""


def _line(text: str, needle: str) -> int:
    """The 1-based line of the first line of `text` containing `needle`."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.fixture
def endpoints():
    return make_endpoint(name="fake"), make_endpoint(name="big-one")


def _import(text: str = CONFIG, **options):
    options.setdefault("endpoint_map", {"openai:gpt-4o-mini": "fake", "big": "big-one"})
    return promptfoo_import(text, name_prefix=options.pop("name_prefix", "support"), **options)


def _messages(release: Release) -> list[tuple[str, str]]:
    return [(b["role"], b["content"]) for b in release.snapshot["steps"][0]["blocks"]]


def test_a_config_becomes_four_variants_a_dataset_and_assertions(endpoints):
    fake, big = endpoints
    report = _import()
    assert [v["name"] for v in report.variants] == [
        "Answer the customer briefly: {{question}} · openai:gpt-4o-mini",
        "Answer the customer briefly: {{question}} · big", "chat · openai:gpt-4o-mini", "chat · big"]
    releases = [v["release"] for v in report.variants]
    assert len({r.pk for r in releases}) == 4 and {r.workflow_id for r in releases} == {report.workflow.pk}
    first, second, third, _ = releases
    assert _messages(first) == [("user", "Answer the customer briefly: {{question}}")]
    assert _messages(third) == [("system", "You are a support agent for {{ product }}."), ("user", "{{question}}")]
    assert first.snapshot["steps"][0]["payload"]["endpoint_id"] == fake.pk
    assert first.snapshot["steps"][0]["payload"]["model"] == "gpt-4o-mini"
    assert first.snapshot["steps"][0]["payload"]["params"] == {}
    assert second.snapshot["steps"][0]["payload"]["endpoint_id"] == big.pk
    assert second.snapshot["steps"][0]["payload"]["params"] == {"temperature": 0.2, "max_tokens": 300}
    assert third.snapshot["steps"][0]["payload"]["params"] == {}  # the next combination resets the settings
    assert report.workflow.input_names == ["product", "question"]

    items = list(report.dataset_version.items.order_by("position"))
    assert [i.inputs for i in items] == [{"product": "Acme", "question": "How do I get a refund?"},
                                         {"product": "Acme Pro", "question": "Where is my order?"},
                                         {"product": "Acme", "question": "Cancel my plan"}]
    assert [i.expected for i in items] == [None, None, None]
    assert items[0].metadata == {"description": "refund"}
    assert items[0].assertions == [{"type": "icontains-any", "value": ["refund", "return"]},
                                   {"type": "not-contains", "value": "sorry"}]
    assert items[1].assertions == [{"type": "llm-rubric", "value": "Is polite and gives a next step"}]
    assert items[2].assertions == [{"type": "contains", "value": "cancel", "weight": 2, "metric": "relevance"}]
    assert report.assertions == [{"type": "not-contains", "value": "As an AI"}, {"type": "latency", "threshold": 5000}]

    left_out = [u for u in report.unsupported if u["action"] == "left out"]
    assert left_out == [{"where": "tests[1].assert[0]", "line": _line(CONFIG, "type: javascript"),
                         "what": "javascript", "reason": "This assertion type is not supported here.",
                         "action": "left out"}]
    ignored = {u["where"]: u for u in report.unsupported if u["action"] == "ignored"}
    assert "providers[1].config.apiKey" in ignored
    assert "sk-should" not in json.dumps(report.as_json())
    assert report.experiment is None and report.suggested_experiment()["variants"][0] == {
        "release": first.pk, "name": report.variants[0]["name"]}


def test_create_experiment_makes_one_experiment_over_every_variant(endpoints):
    report = _import(create_experiment=True)
    experiment = report.experiment
    assert list(experiment.variants.order_by("position").values_list("release_id", flat=True)) == [
        v["release"].pk for v in report.variants]
    assert experiment.assertions == report.assertions and experiment.cell_count == 12
    assert experiment.mapping == {"product": {"column": "product"}, "question": {"column": "question"}}


def _refused(text: str, **options) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        _import(text, **options)
    assert not (Workflow.objects.exists() or Payload.objects.exists() or Block.objects.exists()
                or Dataset.objects.exists() or Release.objects.exists())
    return raised.value.message_dict


def test_an_unmapped_provider_is_refused_naming_it(endpoints):
    problems = _refused(CONFIG, endpoint_map={"openai:gpt-4o-mini": "fake"})
    assert list(problems) == ["providers[1]"]
    assert "“big”" in problems["providers[1]"][0] and problems["providers[1]"][0].startswith(
        f"line {_line(CONFIG, 'id: openai:chat:gpt-4o')}:")


def test_a_default_endpoint_takes_every_provider(endpoints):
    report = _import(endpoint_map={}, default_endpoint="big-one")
    assert {v["release"].snapshot["steps"][0]["payload"]["endpoint_name"] for v in report.variants} == {"big-one"}


def test_bad_yaml_is_refused_with_its_line(endpoints):
    problems = _refused("prompts:\n  - hello\nproviders: [openai:x\ntests:\n  - vars: {a: 1}\n")
    assert list(problems) == ["yaml"] and problems["yaml"][0].startswith("line 4")


def test_a_malformed_regex_is_refused_naming_the_test_and_field(endpoints):
    text = CONFIG.replace("type: contains\n        value: cancel", "type: regex\n        value: \"(unclosed\"")
    problems = _refused(text)
    assert list(problems) == ["tests[2].assert[0].value"]
    assert problems["tests[2].assert[0].value"][0].startswith(f"line {_line(text, '(unclosed')}:")


def test_bad_var_names_settings_and_taken_names_are_refused_naming_the_field(endpoints):
    text = "prompts: ['{{q}}']\nproviders: [openai:gpt-4o-mini]\ntests:\n  - vars: {user-name: x, q: 1}\n"
    assert list(_refused(text)) == ["tests[0].vars.user-name"]
    hot = CONFIG.replace("temperature: 0.2", "temperature: 7")
    assert list(_refused(hot)) == ["providers[1].config.temperature"]
    _import()
    with pytest.raises(ValidationError) as raised:
        _import()
    assert list(raised.value.message_dict) == ["name_prefix"]


def test_no_prompts_or_no_tests_is_refused(endpoints):
    assert "prompts" in _refused("providers: [openai:gpt-4o-mini]\ntests:\n  - vars: {q: 1}\n")
    assert "tests" in _refused("prompts: ['{{q}}']\nproviders: [openai:gpt-4o-mini]\ntests: []\n")
    only_files = "prompts: [file://prompt.txt]\nproviders: [openai:gpt-4o-mini]\ntests:\n  - vars: {q: 1}\n"
    assert "prompts" in _refused(only_files)


def test_files_and_unknown_filters_are_listed_not_fatal(endpoints):
    text = ("prompts:\n  - file://prompts/a.txt\n  - 'Data: {{ item | dump }}'\n  - 'Plain {{ item }}'\n"
            "providers: [openai:gpt-4o-mini]\ntests:\n  - vars: {item: x}\n    assert:\n"
            "      - type: similar\n        value: x\n        threshold: 0.8\n"
            "      - type: contains\n        value: x\n        transform: output.trim()\n"
            "      - type: assert-set\n        assert:\n          - type: python\n            value: x\n"
            "          - type: icontains\n            value: X\n"
            "  - file://more_tests.yaml\n")
    report = _import(text)
    listed = {(u["where"], u["line"]) for u in report.unsupported if u["action"] == "left out"}
    assert listed == {("prompts[0]", 2), ("prompts[1]", 3), ("tests[0].assert[0]", 9),
                      ("tests[0].assert[1].transform", 14), ("tests[0].assert[2].assert[0]", 17), ("tests[1]", 21)}
    assert [b.content for b in report.blocks] == ["Plain {{ item }}"]
    assert report.dataset_version.row_count == 1
    assert report.dataset_version.items.get().assertions == [
        {"type": "assert-set", "assert": [{"type": "icontains", "value": "X"}]}]


def test_expected_is_taken_from_vars_only_when_an_assertion_reads_it(endpoints):
    text = ("prompts: ['Capital of {{country}}?']\nproviders: [openai:gpt-4o-mini]\ntests:\n"
            "  - vars: {country: France, expected: Paris}\n    assert:\n      - type: icontains\n"
            "        value: '{{expected}}'\n"
            "  - vars: {country: Spain, expected: Madrid}\n    assert:\n      - type: equals\n        value: Madrid\n")
    report = _import(text)
    items = list(report.dataset_version.items.order_by("position"))
    assert [i.expected for i in items] == ["Paris", None]
    assert items[1].inputs == {"country": "Spain", "expected": "Madrid"}


def test_a_var_some_tests_lack_or_only_a_prompt_reads_defaults_to_empty(endpoints):
    text = ("prompts: ['{{a}} {{b}} {{c}}']\nproviders: [openai:gpt-4o-mini]\n"
            "tests:\n  - vars: {a: 1}\n  - vars: {a: 2, b: 3}\n")
    assert _import(text).workflow.inputs == [{"name": "a"}, {"name": "b", "default": ""}, {"name": "c", "default": ""}]


BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
prompts: ["{{q}}"]
providers: [openai:gpt-4o-mini]
tests:
  - vars: {q: *g}
"""


def test_hostile_yaml_is_refused_before_anything_is_built(endpoints):
    assert "expands to more than" in _refused(BOMB)["yaml"][0]
    assert "nested more than" in _refused("prompts: " + "[" * 5000 + "]" * 5000)["yaml"][0]
    assert "larger than" in _refused("prompts: ['" + "x" * (1024 * 1024) + "']")["yaml"][0]
    many = "".join(f"a{i}: &a{i} x\n" for i in range(1100)) + "b: [" + ",".join(f"*a{i}" for i in range(1100)) + "]\n"
    assert "aliases" in _refused(many)["yaml"][0]
    assert "yaml" in _refused("!!python/object/apply:os.system ['true']")
    assert "yaml" in _refused("prompts: ['\x84']")  # a character YAML refuses


def test_round_trip_keeps_prompts_tests_and_assertions(endpoints):
    first = _import(create_experiment=True)
    exported = promptfoo_export(experiment=first.experiment)
    assert "sk-" not in exported and "apiBaseUrl: http://127.0.0.1:9/v1" in exported
    config = yaml.safe_load(exported)
    assert [p["id"] for p in config["providers"]] == ["openai:chat:gpt-4o-mini", "openai:chat:gpt-4o"]
    again = promptfoo_import(exported, name_prefix="again", endpoint_map={
        config["providers"][0]["label"]: "fake", config["providers"][1]["label"]: "big-one"})
    assert [_messages(v["release"]) for v in again.variants] == [_messages(v["release"]) for v in first.variants]
    assert [v["release"].snapshot["steps"][0]["payload"]["params"] for v in again.variants] == [
        v["release"].snapshot["steps"][0]["payload"]["params"] for v in first.variants]

    def cases(report):
        return [(i.inputs, i.assertions, i.expected) for i in report.dataset_version.items.order_by("position")]

    assert cases(again) == cases(first)
    assert again.assertions == first.assertions
    assert [u for u in again.unsupported if u["action"] == "left out"] == []


def test_export_pairs_providers_with_their_prompts_only(endpoints):
    report = _import()
    version, workflow = report.dataset_version, report.workflow
    Release.objects.filter(pk=report.variants[3]["release"].pk).delete()  # chat x big is not a variant
    exported = promptfoo_export(workflow=workflow, dataset_version=version)
    config = yaml.safe_load(exported)
    assert "prompts" not in config["providers"][0] and config["providers"][1]["prompts"] == ["prompt 1"]
    again = promptfoo_import(exported, name_prefix="again", default_endpoint="fake")
    assert [(v["prompt"], v["provider"]) for v in again.variants] == [
        ("prompt 1", "fake/gpt-4o-mini"), ("prompt 1", "big-one/gpt-4o"), ("prompt 2", "fake/gpt-4o-mini")]


def test_an_expected_output_is_exported_as_vars_expected_and_read_back(endpoints):
    report = _import()
    dataset = dataset_create(name="answers")
    version, _ = dataset_version_create(dataset=dataset, cases=[
        {"inputs": {"question": "Capital of France?", "product": "Atlas"}, "expected": "Paris",
         "assert": [{"type": "factuality"}]}])
    config = yaml.safe_load(promptfoo_export(workflow=report.workflow, dataset_version=version))
    assert config["tests"] == [{"vars": {"question": "Capital of France?", "product": "Atlas", "expected": "Paris"},
                                "assert": [{"type": "factuality", "value": "{{ expected }}"}]}]
    again = promptfoo_import(yaml.safe_dump(config), name_prefix="again", default_endpoint="fake")
    item = again.dataset_version.items.get()
    assert item.expected == "Paris" and item.assertions == [{"type": "factuality", "value": "{{ expected }}"}]


def test_provider_models():
    assert provider_model("openai:gpt-4o-mini") == "gpt-4o-mini"
    assert provider_model("openai:chat:gpt-4o") == "gpt-4o"
    assert provider_model("ollama:chat:llama3:8b") == "llama3:8b"
    assert provider_model("echo") == "" and provider_model("file://provider.py") == ""


# --- CLI and API --------------------------------------------------------------------------------------

def test_cli_imports_and_exports(endpoints, tmp_path: Path):
    source = tmp_path / "promptfooconfig.yaml"
    source.write_text(CONFIG)
    out = io.StringIO()
    call_command("promptfoo", "import", str(source), "--endpoint", "openai:gpt-4o-mini=fake", "--endpoint",
                 "big=big-one", "--experiment", "--prefix", "cli", stdout=out)
    text = out.getvalue()
    assert "4 variants" in text and f"tests[1].assert[0] (line {_line(CONFIG, 'javascript')}): javascript" in text
    experiment = Experiment.objects.get()
    target = tmp_path / "out.yaml"
    call_command("promptfoo", "export", "--experiment", str(experiment.pk), "--output", str(target), stdout=out)
    assert yaml.safe_load(target.read_text())["tests"][0]["vars"]["question"] == "How do I get a refund?"
    with pytest.raises(CommandError, match="providers\\[1\\]"):
        call_command("promptfoo", "import", str(source), "--endpoint", "openai:gpt-4o-mini=fake", "--prefix", "x")


def test_api_imports_a_file_and_exports_yaml(endpoints, api):
    upload = io.BytesIO(CONFIG.encode())
    upload.name = "promptfooconfig.yaml"
    response = api.post("/api/promptfoo/import/", {
        "file": upload, "endpoint_map": json.dumps({"openai:gpt-4o-mini": "fake", "big": "big-one"}),
        "create_experiment": "true", "name_prefix": "api"}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert len(body["variants"]) == 4 and body["experiment"]["id"]
    assert any(u["where"] == "tests[1].assert[0]" and u["line"] == _line(CONFIG, "javascript")
               for u in body["unsupported"])
    exported = api.get(f"/api/promptfoo/export/?experiment={body['experiment']['id']}")
    assert exported.status_code == 200 and exported["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(exported.content)["defaultTest"]["assert"][0] == {"type": "not-contains", "value": "As an AI"}


def test_api_json_body_and_400s(endpoints, api):
    response = api.post("/api/promptfoo/import/", {"yaml": CONFIG, "endpoint_map": {"openai:gpt-4o-mini": "fake"},
                                                   "name_prefix": "j"}, format="json")
    assert response.status_code == 400 and list(response.json()) == ["providers[1]"]
    response = api.post("/api/promptfoo/import/", {"yaml": BOMB, "default_endpoint": "fake"}, format="json")
    assert response.status_code == 400 and "yaml" in response.json()
    response = api.post("/api/promptfoo/import/", {"yaml": CONFIG, "default_endpoint": "fake", "name_prefix": "j"},
                        format="json")
    assert response.status_code == 201
    assert api.get("/api/promptfoo/export/?experiment=999").status_code == 404
    assert api.get("/api/promptfoo/export/").status_code == 400


def test_api_needs_the_model_permissions(endpoints, django_user_model):
    person = django_user_model.objects.create_user("p", password="pw-for-tests-only")
    client = APIClient()
    client.force_authenticate(person)
    body = {"yaml": CONFIG, "default_endpoint": "fake", "name_prefix": "p"}
    assert client.post("/api/promptfoo/import/", body, format="json").status_code == 403
    person.user_permissions.add(*Permission.objects.filter(codename__in=["add_workflow", "add_dataset"]))
    person = django_user_model.objects.get(pk=person.pk)
    client.force_authenticate(person)
    assert client.post("/api/promptfoo/import/", {**body, "create_experiment": True}, format="json").status_code == 403
    assert client.post("/api/promptfoo/import/", body, format="json").status_code == 201
    assert client.get("/api/promptfoo/export/?experiment=1").status_code == 403
    workflow, version = Workflow.objects.get(), Dataset.objects.get().versions.get()
    by_workflow = f"/api/promptfoo/export/?workflow={workflow.pk}&dataset_version={version.pk}"
    assert client.get(by_workflow).status_code == 403
    person.user_permissions.add(*Permission.objects.filter(codename__in=["view_workflow", "view_dataset"]))
    client.force_authenticate(django_user_model.objects.get(pk=person.pk))
    assert client.get(by_workflow).status_code == 200
    assert APIClient().post("/api/promptfoo/import/", body, format="json").status_code in (401, 403)


async def test_an_oversized_import_is_refused_by_its_length_before_its_body_is_read():
    from tests.datasets.test_body_limit import call

    sent, reached = await call("/api/promptfoo/import/", 50 * 1024 * 1024)
    assert reached == [] and sent[0]["status"] == 413
    assert (await call("/api/promptfoo/import/", 100_000))[1] == ["/api/promptfoo/import/"]
