"""promptfoo interchange: a promptfooconfig.yaml becomes blocks, a payload, a one-step workflow with one
release per prompt x provider (the variants), a dataset version of its tests and the experiment's
assertions; and an experiment (or a workflow's releases with a dataset version) is written back as one.

What this project cannot do (javascript/python assertions, `similar`, most model-graded types, files
referenced with file://, transforms) is listed in the report by where it is and its YAML line, never
dropped in silence. Everything is written in one transaction: a 400 leaves nothing behind.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from jinja2 import TemplateSyntaxError, nodes

from blocks import templating
from blocks.models import Block
from blocks.services import block_create
from datasets.models import Dataset, DatasetVersion
from datasets.services import dataset_create, dataset_version_create
from evaluations.checks import TYPES, compile_assertions
from experiments.models import Experiment
from experiments.promptfoo_yaml import Document, Path, yaml_read
from experiments.services import MAX_VARIANTS, experiment_create
from llm.models import Endpoint
from payloads.models import Payload, Role
from payloads.services import payload_create, payload_update
from releases.models import Release
from releases.services import release_cut
from workflows.models import RESERVED_NAMES, Workflow, validate_variable_name
from workflows.services import workflow_create

OUTPUT_KEY = "output"
NAME_MAX = 100
# promptfoo assertion keys with no counterpart that change what is checked: such an assertion is left out.
MEANING_KEYS = {"transform", "contextTransform", "rubricPrompt", "config"}
# Keys that only pick how promptfoo grades (its grading provider): ignored, the judge workflow decides.
IGNORED_ASSERTION_KEYS = {"provider"}
ASSERTION_KEYS = {"type", "value", "threshold", "weight", "metric", "assert", "description"}
SAMPLING = ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty")
# OpenAI request parameters passed as they are (payload extra_params).
EXTRA_PARAMS = {"tools", "tool_choice", "reasoning_effort", "max_completion_tokens", "logprobs", "top_logprobs",
                "logit_bias", "parallel_tool_calls", "n", "user"}
# Connection settings belong to the endpoint (and keys are never read from a file).
CONNECTION_KEYS = {"apiBaseUrl", "apiHost", "apiKey", "apiKeyEnvar", "organization", "headers", "cost"}
PROVIDER_KINDS = {"chat", "completion", "messages", "responses"}
TOP_KEYS = {"description", "prompts", "providers", "tests", "defaultTest"}


def where_of(path: Path) -> str:
    """("tests", 2, "assert", 0) -> "tests[2].assert[0]": the field names our 400s use."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass
class Prompt:
    label: str
    messages: list[tuple[str, str]]  # (role, template)


@dataclass
class Provider:
    path: Path
    id: str
    label: str
    endpoint: Endpoint
    model: str
    settings: dict[str, Any]
    prompts: list[str] | None  # the labels of the only prompts it runs (promptfoo's provider `prompts`)


@dataclass
class ImportReport:
    """What an import made, what it left out (`unsupported`) or ignored, and how to start the experiment."""

    workflow: Workflow | None = None
    payload: Payload | None = None
    blocks: list[Block] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)  # {"name", "release", "prompt", "provider"}
    dataset: Dataset | None = None
    dataset_version: DatasetVersion | None = None
    assertions: list[dict[str, Any]] = field(default_factory=list)  # defaultTest.assert: the experiment's
    experiment: Experiment | None = None
    unsupported: list[dict[str, Any]] = field(default_factory=list)  # {"where", "line", "what", "reason", "action"}

    def suggested_experiment(self) -> dict[str, Any]:
        """experiment_create's arguments, for a caller who starts the experiment later."""
        return {"name": self.workflow.name if self.workflow else "",
                "workflow": self.workflow.pk if self.workflow else None,
                "dataset_version": self.dataset_version.pk if self.dataset_version else None,
                "variants": [{"release": v["release"].pk, "name": v["name"]} for v in self.variants],
                "assertions": self.assertions}

    def as_json(self) -> dict[str, Any]:
        return {
            "workflow": {"id": self.workflow.pk, "name": self.workflow.name} if self.workflow else None,
            "payload": {"id": self.payload.pk, "name": self.payload.name} if self.payload else None,
            "blocks": [{"id": b.pk, "name": b.name} for b in self.blocks],
            "variants": [{"name": v["name"], "release": v["release"].pk, "release_number": v["release"].number,
                          "prompt": v["prompt"], "provider": v["provider"]} for v in self.variants],
            "dataset": {"id": self.dataset.pk, "name": self.dataset.name} if self.dataset else None,
            "dataset_version": ({"id": self.dataset_version.pk, "number": self.dataset_version.number,
                                 "rows": self.dataset_version.row_count} if self.dataset_version else None),
            "assertions": self.assertions,
            "experiment": {"id": self.experiment.pk, "name": self.experiment.name} if self.experiment else None,
            "suggested_experiment": self.suggested_experiment(),
            "unsupported": self.unsupported,
        }


class _Reader:
    """Turns the document into plain parts, collecting 400 problems (by field) and what is left out."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.problems: dict[str, list[str]] = {}
        self.unsupported: list[dict[str, Any]] = []

    def line(self, path: Path) -> int | None:
        return self.document.line(path)

    def problem(self, path: Path, message: str) -> None:
        line = self.line(path)
        self.problems.setdefault(where_of(path) or "yaml", []).append(f"line {line}: {message}" if line else message)

    def leave_out(self, path: Path, what: str, reason: str, action: str = "left out") -> None:
        self.unsupported.append({"where": where_of(path), "line": self.line(path), "what": what, "reason": reason,
                                 "action": action})

    # --- prompts ----------------------------------------------------------------------------------

    def prompts(self) -> list[Prompt]:
        raw = self.document.data.get("prompts")
        if isinstance(raw, str):
            raw = [raw]
        if isinstance(raw, dict):  # the older {file: label} form
            raw = [{"raw": key, "label": value} for key, value in raw.items()]
        if not isinstance(raw, list) or not raw:
            self.problem(("prompts",), "Give at least one prompt (a list of strings or {raw, label}).")
            return []
        found = [prompt for index, entry in enumerate(raw) if (prompt := self._prompt(entry, ("prompts", index)))]
        if not found and "prompts" not in self.problems:
            self.problem(("prompts",), "No prompt could be imported (see unsupported).")
        return found

    def _prompt(self, entry: Any, path: Path) -> Prompt | None:
        label = ""
        if isinstance(entry, dict):
            label = str(entry.get("label") or "")
            entry = entry.get("raw", entry.get("id"))
        if not isinstance(entry, str) or not entry.strip():
            self.problem(path, "A prompt is a string or {raw: ..., label: ...}.")
            return None
        if entry.startswith("file://"):
            self.leave_out(path, entry[:200], "A file:// prompt cannot be read from an upload: paste it inline.")
            return None
        messages = _chat_messages(entry) or [(Role.USER, entry)]
        for _role, content in messages:
            problem = template_problem(content)
            if problem:
                self.leave_out(path, label or entry[:80], f"The template cannot be used here: {problem}")
                return None
        return Prompt(label=label or entry[:60], messages=messages)

    # --- providers --------------------------------------------------------------------------------

    def providers(self, endpoint_map: dict[str, int | str], default: Endpoint | None) -> list[Provider]:
        raw = self.document.data.get("providers")
        if isinstance(raw, str | dict):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            self.problem(("providers",), "Give at least one provider.")
            return []
        endpoints = _endpoints(endpoint_map, self)
        return [p for index, entry in enumerate(raw)
                if (p := self._provider(entry, ("providers", index), endpoints, default))]

    def _provider(self, entry: Any, path: Path, endpoints: dict[str, Endpoint], default: Endpoint | None
                  ) -> Provider | None:
        if isinstance(entry, dict) and len(entry) == 1 and "id" not in entry and isinstance(
                next(iter(entry.values())), dict):  # the {"openai:gpt-4o": {config: ...}} form
            key, body = next(iter(entry.items()))
            entry = {"id": key, **body}
        if isinstance(entry, str):
            entry = {"id": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            self.problem(path, "A provider is a string like openai:gpt-4o-mini or {id, label, config}.")
            return None
        provider_id, label = entry["id"], str(entry.get("label") or "")
        endpoint = endpoints.get(label) or endpoints.get(provider_id) or default
        if endpoint is None:
            self.problem(path, f"No endpoint for the provider “{label or provider_id}”: map it (endpoint_map "
                               f"{{\"{label or provider_id}\": endpoint}}) or give a default endpoint.")
            return None
        for key in sorted(set(entry) - {"id", "label", "config", "prompts"}):
            self.leave_out((*path, key), key, "Not used by this project.", "ignored")
        settings = self._settings(entry.get("config") or {}, (*path, "config"))
        only = entry.get("prompts")
        if only is not None and not (isinstance(only, list) and all(isinstance(p, str) for p in only)):
            self.problem((*path, "prompts"), "The labels of the prompts this provider runs: a list of strings.")
        return Provider(path=path, id=provider_id, label=label or provider_id, endpoint=endpoint,
                        model=provider_model(provider_id), settings=settings,
                        prompts=only if isinstance(only, list) else None)

    def _settings(self, config: Any, path: Path) -> dict[str, Any]:
        if not isinstance(config, dict):
            self.problem(path, "A provider's config is a mapping.")
            return {}
        settings: dict[str, Any] = {name: config.get(name) for name in SAMPLING}
        extra = {key: value for key, value in config.items() if key in EXTRA_PARAMS}
        settings["json_schema"] = _response_schema(config.get("response_format"))
        if config.get("response_format") is not None and settings["json_schema"] is None:
            self.leave_out((*path, "response_format"), "response_format",
                           "Only a json_schema response format maps to a payload's JSON schema.", "ignored")
        settings["extra_params"] = extra
        for key in sorted(set(config) - set(SAMPLING) - EXTRA_PARAMS - {"response_format"}):
            reason = ("The endpoint holds the connection and key." if key in CONNECTION_KEYS
                      else "Not a setting this project sends.")
            self.leave_out((*path, key), key, reason, "ignored")
        return settings

    # --- assertions -------------------------------------------------------------------------------

    def assertions(self, raw: Any, path: Path, depth: int = 1) -> list[dict[str, Any]]:
        """The supported assertions of a list, each compiled; the others listed and left out."""
        if raw in (None, []):
            return []
        if isinstance(raw, str) and raw.startswith("file://"):
            self.leave_out(path, raw[:200], "Assertions in a file cannot be read from an upload.")
            return []
        if not isinstance(raw, list):
            self.problem(path, "A list of assertions.")
            return []
        return [spec for index, entry in enumerate(raw) if (spec := self._assertion(entry, (*path, index), depth))]

    def _assertion(self, entry: Any, path: Path, depth: int) -> dict[str, Any] | None:
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            self.problem(path, "An assertion is a mapping with a type.")
            return None
        kind = entry["type"]
        base = kind[4:] if kind.startswith("not-") else kind
        if base not in TYPES:
            self.leave_out(path, kind, "This assertion type is not supported here.")
            return None
        meaning = sorted(set(entry) & MEANING_KEYS)
        if meaning:
            self.leave_out((*path, meaning[0]), kind, f"“{meaning[0]}” is not supported here.")
            return None
        if isinstance(entry.get("value"), str) and entry["value"].startswith("file://"):
            self.leave_out((*path, "value"), kind, "A value in a file cannot be read from an upload.")
            return None
        for key in sorted(set(entry) - ASSERTION_KEYS - MEANING_KEYS):
            reason = ("Judged by this project's judge workflow." if key in IGNORED_ASSERTION_KEYS
                      else "Not a field this project reads.")
            self.leave_out((*path, key), f"{kind}.{key}", reason, "ignored")
        spec = {key: value for key, value in entry.items() if key in ASSERTION_KEYS}
        if base == "assert-set":
            inner = self.assertions(entry.get("assert"), (*path, "assert"), depth + 1)
            if not inner:
                self.leave_out(path, kind, "No assertion of the set is supported.")
                return None
            spec["assert"] = inner
        if depth == 1:
            self._compile(spec, path)
        return spec

    def _compile(self, spec: dict[str, Any], path: Path) -> None:
        where = where_of(path)
        try:
            compile_assertions([spec], field_name="x")
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                suffix = key[len("x[0]"):]
                line = self.line((*path, suffix.lstrip(".").split(".")[0].split("[")[0])) if suffix else self.line(path)
                self.problems.setdefault(f"{where}{suffix}", []).extend(
                    f"line {line}: {message}" if line else message for message in messages)

    # --- tests ------------------------------------------------------------------------------------

    def default_test(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        raw = self.document.data.get("defaultTest")
        if raw is None:
            return {}, []
        if isinstance(raw, str):
            self.leave_out(("defaultTest",), raw[:200], "A defaultTest in a file cannot be read from an upload.")
            return {}, []
        if not isinstance(raw, dict):
            self.problem(("defaultTest",), "defaultTest is a mapping (vars, assert).")
            return {}, []
        self._test_extras(raw, ("defaultTest",))
        return self._vars(raw.get("vars"), ("defaultTest", "vars")) or {}, self.assertions(
            raw.get("assert"), ("defaultTest", "assert"))

    def tests(self, default_vars: dict[str, Any], default_asserts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raw = self.document.data.get("tests")
        if isinstance(raw, str):
            self.leave_out(("tests",), raw[:200], "Tests in a file cannot be read from an upload: list them inline.")
            raw = []
        if not isinstance(raw, list):
            self.problem(("tests",), "tests is a list of {vars, assert, description}.")
            return []
        cases = [case for index, entry in enumerate(raw)
                 if (case := self._case(entry, ("tests", index), default_vars, default_asserts))]
        if not cases and "tests" not in self.problems:
            self.problem(("tests",), "Give at least one test: it is a case of the dataset.")
        return cases

    def _case(self, entry: Any, path: Path, default_vars: dict[str, Any], default_asserts: list[dict[str, Any]]
              ) -> dict[str, Any] | None:
        if isinstance(entry, str) and entry.startswith("file://"):
            self.leave_out(path, entry[:200], "Tests in a file cannot be read from an upload.")
            return None
        if not isinstance(entry, dict):
            self.problem(path, "A test is a mapping (vars, assert, description).")
            return None
        test_vars = self._vars(entry.get("vars"), (*path, "vars"))
        if test_vars is None:
            self.leave_out(path, f"test {path[-1]}", "Its vars are in a file, which cannot be read from an upload.")
            return None
        self._test_extras(entry, path)
        metadata = dict(entry["metadata"]) if isinstance(entry.get("metadata"), dict) else {}
        if entry.get("description"):
            metadata["description"] = str(entry["description"])
        inputs = {**default_vars, **test_vars}
        own = self.assertions(entry.get("assert"), (*path, "assert"))
        # promptfoo's {{expected}} in an assertion reads vars.expected; ours reads the case's expected output.
        expected = inputs.get("expected") if _reads_expected([*default_asserts, *own]) else None
        return {"inputs": inputs, "expected": expected, "metadata": metadata, "assert": own or None}

    def _vars(self, raw: Any, path: Path) -> dict[str, Any] | None:
        if raw is None:
            return {}
        if isinstance(raw, str) and raw.startswith("file://"):
            return None
        if not isinstance(raw, dict):
            self.problem(path, "vars is a mapping of names to values.")
            return {}
        for name, value in raw.items():
            try:
                validate_variable_name(name)
            except ValidationError as exc:
                self.problem((*path, name), exc.messages[0])
            if isinstance(value, list):
                self.leave_out((*path, name), name, "A list var makes promptfoo run every combination; here it is "
                                                    "one input holding the list.", "ignored")
            if isinstance(value, str) and value.startswith("file://"):
                self.leave_out((*path, name), name, "A file:// var cannot be read from an upload: its text is the "
                                                    "path.", "ignored")
        return dict(raw)

    def _test_extras(self, entry: dict[str, Any], path: Path) -> None:
        for key in sorted(set(entry) - {"vars", "assert", "description", "metadata"}):
            self.leave_out((*path, key), key, "Not used by this project.", "ignored")

    def top_level(self) -> None:
        for key in sorted(set(self.document.data) - TOP_KEYS):
            self.leave_out((key,), key, "Not used by this project.", "ignored")


def _reads_expected(specs: list[dict[str, Any]]) -> bool:
    """Whether a value of these assertions (or of their sets) reads the variable `expected`."""
    for spec in specs:
        value = spec.get("value")
        if isinstance(value, str) and "expected" in templating.variables_of(value):
            return True
        if isinstance(spec.get("assert"), list) and _reads_expected(spec["assert"]):
            return True
    return False


def _chat_messages(text: str) -> list[tuple[str, str]] | None:
    """A chat prompt (a JSON list of {role, content}) as its messages; None for a plain prompt."""
    if not text.lstrip().startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    roles = set(Role.values)
    if not isinstance(parsed, list) or not parsed or not all(
            isinstance(m, dict) and m.get("role") in roles and isinstance(m.get("content"), str) for m in parsed):
        return None
    return [(m["role"], m["content"]) for m in parsed]


def template_problem(source: str) -> str | None:
    """Why a promptfoo (Nunjucks) template cannot be a block: it does not parse, or names a filter or test
    our templates do not have (Nunjucks' dump, for one)."""
    try:
        templating.check_syntax(source)
        tree = templating.environment().parse(source)
    except (templating.TemplateProblem, TemplateSyntaxError) as exc:
        return str(exc)
    environment = templating.environment()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = environment.filters if isinstance(node, nodes.Filter) else environment.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            return f"line {node.lineno}: there is no {kind} “{node.name}”."
    return None


def _response_schema(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and value.get("type") == "json_schema" and isinstance(value.get("json_schema"), dict):
        schema = value["json_schema"].get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def provider_model(provider_id: str) -> str:
    """The model a provider id names ("openai:chat:gpt-4o" -> "gpt-4o"); "" (the endpoint's default) if none."""
    vendor, _, rest = provider_id.partition(":")
    if vendor in ("file", "exec", "python", "http", "https", "webhook", "echo", "sequence") or not rest:
        return ""
    kind, _, model = rest.partition(":")
    return model if kind in PROVIDER_KINDS and model else rest


def _endpoint_named(value: int | str) -> Endpoint | None:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return Endpoint.objects.filter(pk=int(value)).first()
    return Endpoint.objects.filter(name=value).first()


def _endpoints(endpoint_map: dict[str, int | str], reader: _Reader) -> dict[str, Endpoint]:
    found: dict[str, Endpoint] = {}
    for key, value in endpoint_map.items():
        endpoint = _endpoint_named(value)
        if endpoint is None:
            reader.problems.setdefault(f"endpoint_map.{key}", []).append(f"There is no endpoint “{value}”.")
        else:
            found[key] = endpoint
    return found


# --- Writing ---------------------------------------------------------------------------------------

def _names_free(prefix: str, prompts: list[Prompt]) -> None:
    taken = [name for model, name in ((Workflow, prefix), (Payload, prefix), (Dataset, prefix)) if
             model.objects.filter(name=name).exists()]
    taken += [name for name in _block_names(prefix, prompts) if Block.objects.filter(name=name).exists()]
    if taken:
        raise ValidationError({"name_prefix": [f"“{taken[0]}” exists already: choose another name prefix."]})


def _block_names(prefix: str, prompts: list[Prompt]) -> list[str]:
    return [f"{prefix}-p{i + 1}" + (f"-{j + 1}" if len(p.messages) > 1 else "")
            for i, p in enumerate(prompts) for j in range(len(p.messages))]


def _inputs(prompts: list[Prompt], cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The union of the tests' vars in order. A var some tests lack, or a variable only a prompt reads, gets
    an empty default: promptfoo renders an undefined variable as nothing, our templates refuse it."""
    names = list(dict.fromkeys(name for case in cases for name in case["inputs"]))
    read = sorted({name for p in prompts for _, text in p.messages for name in templating.variables_of(text)}
                  - set(names) - RESERVED_NAMES)
    return ([{"name": name} if all(name in case["inputs"] for case in cases) else {"name": name, "default": ""}
             for name in names] + [{"name": name, "default": ""} for name in read])


def _combinations(prompts: list[Prompt], providers: list[Provider]) -> list[tuple[Prompt, Provider]]:
    combos = [(prompt, provider) for prompt in prompts for provider in providers
              if provider.prompts is None or prompt.label in provider.prompts]
    if not combos:
        raise ValidationError({"providers": ["No provider runs any of the prompts (see their `prompts`)."]})
    if len(combos) > MAX_VARIANTS:
        raise ValidationError({"prompts": [f"{len(prompts)} prompts x {len(providers)} providers make {len(combos)} "
                                           f"variants; at most {MAX_VARIANTS}."]})
    return combos


def _payload_fields(provider: Provider) -> dict[str, Any]:
    return {"endpoint": provider.endpoint, "model": provider.model, **provider.settings}


def _variants(report: ImportReport, prefix: str, prompts: list[Prompt], providers: list[Provider],
              inputs: list[dict[str, Any]], description: str, user: Any) -> None:
    """One payload and workflow; each prompt x provider is the payload edited, then a release cut."""
    names = iter(_block_names(prefix, prompts))
    uses = [[{"block": block_create(name=next(names), content=text, user=user, message="promptfoo import"),
              "role": role} for role, text in prompt.messages] for prompt in prompts]
    report.blocks = [use["block"] for blocks in uses for use in blocks]
    for prompt, provider in _combinations(prompts, providers):
        blocks = uses[prompts.index(prompt)]
        try:
            if report.payload is None:
                report.payload = payload_create(name=prefix, blocks=blocks, user=user, message="promptfoo import",
                                                **_payload_fields(provider))
            else:
                payload_update(payload=report.payload, data=_payload_fields(provider), blocks=blocks, user=user,
                               message="promptfoo import")
        except ValidationError as exc:
            where = where_of((*provider.path, "config"))
            raise ValidationError({f"{where}.{key}" if key != "__all__" else where: messages
                                   for key, messages in exc.message_dict.items()}) from None
        if report.workflow is None:
            report.workflow = workflow_create(name=prefix, description=description, inputs=inputs, user=user,
                                              steps=[{"payload": report.payload, "output_key": OUTPUT_KEY}],
                                              message="promptfoo import")
        name = f"{prompt.label} · {provider.label}"[:NAME_MAX]
        release, _ = release_cut(workflow=report.workflow, user=user, message=f"promptfoo: {name}")
        if all(v["release"].pk != release.pk for v in report.variants):
            report.variants.append({"name": name, "release": release, "prompt": prompt.label,
                                    "provider": provider.label})


def _read(document: Document, endpoint_map: dict[str, int | str], default: Endpoint | None
          ) -> tuple[_Reader, list[Prompt], list[Provider], list[dict[str, Any]], list[dict[str, Any]]]:
    reader = _Reader(document)
    reader.top_level()
    prompts = reader.prompts()
    providers = reader.providers(endpoint_map, default)
    default_vars, default_asserts = reader.default_test()
    cases = reader.tests(default_vars, default_asserts)
    if reader.problems:
        raise ValidationError(reader.problems)
    return reader, prompts, providers, default_asserts, cases


def _default_endpoint(value: Any) -> Endpoint | None:
    if value in (None, ""):
        return None
    endpoint = value if isinstance(value, Endpoint) else _endpoint_named(value)
    if endpoint is None:
        raise ValidationError({"default_endpoint": [f"There is no endpoint “{value}”."]})
    return endpoint


@transaction.atomic
def promptfoo_import(text_or_bytes: str | bytes, *, endpoint_map: dict[str, int | str] | None = None,
                     default_endpoint: Endpoint | int | str | None = None, name_prefix: str = "",
                     create_experiment: bool = False, user: Any = None) -> ImportReport:
    """Import a promptfooconfig.yaml (see the module's docstring); ValidationError naming the field and
    line, with nothing written, when it cannot be imported."""
    if endpoint_map is not None and not isinstance(endpoint_map, dict):
        raise ValidationError({"endpoint_map": ['A mapping {"provider id or label": endpoint id or name}.']})
    document = yaml_read(text_or_bytes)
    reader, prompts, providers, default_asserts, cases = _read(document, endpoint_map or {},
                                                               _default_endpoint(default_endpoint))
    description = str(document.data.get("description") or "")
    prefix = (name_prefix or description.strip().partition("\n")[0] or "promptfoo").strip()[:NAME_MAX - 8]
    _names_free(prefix, prompts)
    report = ImportReport(unsupported=reader.unsupported, assertions=default_asserts)
    _variants(report, prefix, prompts, providers, _inputs(prompts, cases), description, user)
    report.dataset = dataset_create(name=prefix, description=description, user=user)
    report.dataset_version, _ = dataset_version_create(dataset=report.dataset, cases=cases, user=user,
                                                       message="promptfoo import")
    if create_experiment:
        report.experiment = experiment_create(user=user, **{
            **report.suggested_experiment(), "workflow": report.workflow, "dataset_version": report.dataset_version})
    return report


# --- Export ----------------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Multi-line text as literal blocks, so prompts read as they were written."""


def _text_representer(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value and value == value.rstrip(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text_representer)


def _prompt_text(blocks: list[dict[str, str]]) -> str:
    if len(blocks) == 1 and blocks[0]["role"] == Role.USER:
        return blocks[0]["content"]
    return json.dumps([{"role": b["role"], "content": b["content"]} for b in blocks], ensure_ascii=False, indent=2)


def _provider_entry(payload: dict[str, Any], endpoint: Endpoint | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if endpoint is not None:
        config["apiBaseUrl"] = endpoint.base_url
    config.update({key: value for key, value in (payload.get("params") or {}).items() if value is not None})
    if payload.get("json_schema"):
        config["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "output", "schema": payload["json_schema"]}}
    return {"id": f"openai:chat:{payload['model']}", "config": config}


def _releases_steps(releases: list[Release]) -> list[dict[str, Any]]:
    steps = []
    for release in releases:
        found = release.snapshot.get("steps") or []
        if len(found) != 1:
            raise ValidationError({"workflow": [f"Release {release} has {len(found)} steps: promptfoo runs one "
                                                "prompt per call, so only one-step workflows can be exported."]})
        steps.append(found[0])
    return steps


def _prompts_and_providers(releases: list[Release]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Distinct prompts and providers of the releases; a provider runs only the prompts it was paired with."""
    steps = _releases_steps(releases)
    endpoints = Endpoint.objects.in_bulk({step["payload"]["endpoint_id"] for step in steps})
    prompts: dict[str, dict[str, Any]] = {}
    providers: dict[str, dict[str, Any]] = {}
    for step in steps:
        text = _prompt_text(step["blocks"])
        prompt = prompts.setdefault(text, {"raw": text, "label": f"prompt {len(prompts) + 1}"})
        entry = _provider_entry(step["payload"], endpoints.get(step["payload"]["endpoint_id"]))
        key = json.dumps(entry, sort_keys=True)
        if key not in providers:
            providers[key] = {**entry, "label": f"{step['payload']['endpoint_name']}/{step['payload']['model']}"
                              + (f" #{len(providers) + 1}" if any(
                                  p["id"] == entry["id"] for p in providers.values()) else ""), "prompts": []}
        providers[key]["prompts"].append(prompt["label"])
    labels = [p["label"] for p in prompts.values()]
    for provider in providers.values():
        if sorted(provider["prompts"]) == sorted(labels):
            del provider["prompts"]  # paired with every prompt: promptfoo's default
        if not provider["config"]:
            del provider["config"]
    return list(prompts.values()), [{"id": p["id"], "label": p["label"], **{k: p[k] for k in ("config", "prompts")
                                                                              if k in p}} for p in providers.values()]


def _exported_assertions(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours as promptfoo reads them: factuality names its reference (ours defaults to {{ expected }})."""
    exported = []
    for spec in specs:
        spec = dict(spec)
        if spec.get("type") in ("factuality", "not-factuality") and spec.get("value") is None:
            spec["value"] = "{{ expected }}"
        if isinstance(spec.get("assert"), list):
            spec["assert"] = _exported_assertions(spec["assert"])
        exported.append(spec)
    return exported


def _tests(version: DatasetVersion) -> list[dict[str, Any]]:
    tests = []
    for item in version.items.order_by("position").iterator(chunk_size=1000):
        test: dict[str, Any] = {}
        if (item.metadata or {}).get("description"):
            test["description"] = item.metadata["description"]
        test["vars"] = dict(item.inputs)
        if item.expected is not None and "expected" not in test["vars"]:
            test["vars"]["expected"] = item.expected  # promptfoo's assertions read it as {{expected}}
        if item.assertions:
            test["assert"] = _exported_assertions(item.assertions)
        tests.append(test)
    return tests


def promptfoo_export(*, experiment: Experiment | None = None, workflow: Workflow | None = None,
                     dataset_version: DatasetVersion | None = None) -> str:
    """A promptfooconfig.yaml of an experiment (its variants' releases, dataset version and assertions), or
    of a workflow's releases with a dataset version. No endpoint key is ever written."""
    if experiment is not None:
        releases = [v.release for v in experiment.variants.select_related("release").order_by("position")]
        workflow, dataset_version, assertions = experiment.workflow, experiment.dataset_version, experiment.assertions
    elif workflow is not None and dataset_version is not None:
        releases, assertions = list(workflow.releases.order_by("number")), []
    else:
        raise ValidationError({"experiment": ["Give an experiment, or a workflow and a dataset version."]})
    if not releases:
        raise ValidationError({"workflow": [f"“{workflow}” has no release to export."]})
    prompts, providers = _prompts_and_providers(releases)
    config: dict[str, Any] = {"description": workflow.description or workflow.name, "prompts": prompts,
                              "providers": providers}
    if assertions:
        config["defaultTest"] = {"assert": _exported_assertions(assertions)}
    config["tests"] = _tests(dataset_version)
    return yaml_dump(config)


def yaml_dump(config: dict[str, Any]) -> str:
    return yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
