"""Reading an untrusted promptfooconfig.yaml: bounded in bytes, depth, aliases and expanded size, and
with the line of every mapping key and list item, so a problem can name where it is.

PyYAML shares an aliased node's object, so a billion-laughs document loads small but becomes huge
the moment anything walks it (JSON, our import): its size is counted with aliases expanded before
anything is built, and a document over the caps is refused.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 1_000
MAX_EXPANDED_NODES = 200_000  # scalars, lists and mappings counted with every alias expanded

Path = tuple[str | int, ...]


class _TooBig(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and many aliases while it composes (before constructing)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooBig(f"more than {MAX_ALIASES} aliases", self.peek_event().start_mark.line + 1)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _TooBig(f"nested more than {MAX_DEPTH} deep", self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """Nodes under `node` with aliases expanded; each distinct node is counted once (memoized), so this is linear."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_EXPANDED_NODES + 1  # a cycle (a recursive alias) counts as too big
    total = 1
    if isinstance(node, SequenceNode):
        children: list[Node] = node.value
    elif isinstance(node, MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes)
        if total > MAX_EXPANDED_NODES:
            break
    sizes[id(node)] = total
    return total


def _lines(node: Node, path: Path, found: dict[Path, int], depth: int = 0) -> None:
    found.setdefault(path, node.start_mark.line + 1)
    if depth > MAX_DEPTH:
        return
    if isinstance(node, SequenceNode):
        for index, child in enumerate(node.value):
            _lines(child, (*path, index), found, depth + 1)
    elif isinstance(node, MappingNode):
        for key, child in node.value:
            if isinstance(key, ScalarNode) and key.value != "<<":
                found.setdefault((*path, key.value), key.start_mark.line + 1)
                _lines(child, (*path, key.value), found, depth + 1)


def _plain(value: Any) -> Any:
    """JSON-able data: dates become ISO text, keys become strings."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


@dataclass
class Document:
    data: Any
    lines: dict[Path, int]

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest parent that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def _refuse(message: str) -> ValidationError:
    return ValidationError({"yaml": [message]})


def yaml_read(text_or_bytes: str | bytes) -> Document:
    """The document, or ValidationError {"yaml": [...]} naming the line of the problem."""
    raw = text_or_bytes.encode() if isinstance(text_or_bytes, str) else bytes(text_or_bytes)
    if len(raw) > MAX_BYTES:
        raise _refuse(f"The file is larger than {MAX_BYTES} bytes.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(f"Not UTF-8 text (byte {exc.start}).") from None
    try:
        loader = BoundedLoader(text)
    except yaml.YAMLError as exc:  # a character YAML does not allow
        raise _refuse(f"Not YAML: {exc}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise _refuse("The file is empty.")
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise _refuse(f"line {node.start_mark.line + 1}: the document expands to more than {MAX_EXPANDED_NODES} "
                          "values (aliases of aliases?); refused.")
        data = _plain(loader.construct_document(node))
        lines: dict[Path, int] = {}
        _lines(node, (), lines)
    except _TooBig as exc:
        raise _refuse(f"line {exc.line}: {exc}; refused.") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise _refuse(f"{where}{exc.problem or exc.context}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _refuse(f"Not YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise _refuse("A promptfooconfig is a mapping (prompts:, providers:, tests:).")
    return Document(data, lines)
