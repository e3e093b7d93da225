"""The History page's reading, shared by blocks, payloads and workflows: the versions newest first and,
for one selected version, what differs from the current one (texts word by word, other fields as a
table, ordered lists item by item). Each app's selector says which fields are which. `version_diff`
compares any two versions (the versions API's diff route)."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.http import Http404

from core.diffing import WordDiff, word_diff


@dataclass(frozen=True)
class FieldChange:
    name: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True)
class TextChange:
    name: str
    diff: WordDiff


@dataclass(frozen=True)
class ListChange:
    name: str
    old: list[str]
    new: list[str]

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True)
class HistoryLayout:
    """Which keys of a version's content are texts (word diff), ordered lists (with an item label), or plain fields."""

    texts: Sequence[str] = ()
    lists: dict[str, Callable[[Any], str]] = field(default_factory=dict)
    hidden: Sequence[str] = ()


def shown(value: Any) -> str:
    """A field's value as a diff table shows it: "—" for nothing, JSON for structures."""
    if value is None or value == "":
        return "—"
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _selected(versions: list[Any], number: int | str | None) -> Any:
    """The asked-for version (404 if none), else the one before the current, else the only one."""
    if number in (None, ""):
        return versions[1] if len(versions) > 1 else versions[0]
    found = next((v for v in versions if str(v.number) == str(number).strip()), None)
    if found is None:
        raise Http404(f"No version {number}.")
    return found


@dataclass(frozen=True)
class VersionDiff:
    """What differs between two versions of one object: texts word by word, fields, ordered lists."""

    old: Any
    new: Any
    texts: list[TextChange]
    fields: list[FieldChange]
    lists: list[ListChange]

    @property
    def changed(self) -> int:
        return (sum(not text.diff.is_same for text in self.texts) + sum(f.changed for f in self.fields)
                + sum(item.changed for item in self.lists))

    def as_dict(self) -> dict[str, Any]:
        def side(version: Any) -> dict[str, Any]:
            author = version.created_by.get_username() if version.created_by_id else None
            return {"number": version.number, "message": version.message, "author": author,
                    "created_at": version.created_at, "content_hash": version.content_hash}

        def segments(items: list[Any]) -> list[dict[str, Any]]:
            return [{"text": s.text, "changed": s.changed} for s in items]

        return {
            "old": side(self.old), "new": side(self.new), "changed": self.changed,
            "texts": [{"name": t.name, "changed_words": t.diff.changed_words, "old": segments(t.diff.left),
                       "new": segments(t.diff.right)} for t in self.texts],
            "fields": [{"name": f.name, "old": f.old, "new": f.new, "changed": f.changed} for f in self.fields],
            "lists": [{"name": item.name, "old": item.old, "new": item.new, "changed": item.changed}
                      for item in self.lists],
        }


@dataclass(frozen=True)
class History:
    """The History page: the versions newest first, and the selected one compared with the current."""

    versions: list[Any]
    current: Any
    selected: Any
    diff: VersionDiff | None

    @property
    def texts(self) -> list[TextChange]:
        return self.diff.texts if self.diff else []

    @property
    def fields(self) -> list[FieldChange]:
        return self.diff.fields if self.diff else []

    @property
    def lists(self) -> list[ListChange]:
        return self.diff.lists if self.diff else []

    @property
    def changed(self) -> int:
        return self.diff.changed if self.diff else 0


def version_diff(old: Any, new: Any, *, layout: HistoryLayout) -> VersionDiff:
    """Any two versions of one object compared, `old` on the left."""
    before, after = old.content, new.content
    keys = [key for key in dict.fromkeys([*after, *before]) if key not in layout.hidden]
    return VersionDiff(
        old=old, new=new,
        texts=[TextChange(key, word_diff(before.get(key) or "", after.get(key) or "")) for key in layout.texts],
        fields=[FieldChange(key, shown(before.get(key)), shown(after.get(key))) for key in keys
                if key not in layout.texts and key not in layout.lists],
        lists=[ListChange(key, [label(item) for item in before.get(key) or []],
                          [label(item) for item in after.get(key) or []]) for key, label in layout.lists.items()],
    )


def version_history(versions: Any, *, layout: HistoryLayout, selected: int | str | None = None) -> History:
    """`versions`: the object's related manager. The current content is the latest version's: every save
    that changes the object appends one."""
    rows = list(versions.select_related("created_by").order_by("-number"))
    if not rows:  # objects made outside the services (fixtures) have none
        if selected not in (None, ""):
            raise Http404(f"No version {selected}.")
        return History(versions=[], current=None, selected=None, diff=None)
    current, chosen = rows[0], _selected(rows, selected)
    return History(versions=rows, current=current, selected=chosen, diff=version_diff(chosen, current, layout=layout))


def version_get(versions: Any, number: int) -> Any:
    """One version by number, or a 404 (a number past the column's range names none)."""
    version = versions.filter(number=number).first() if 0 < number < 2**31 else None
    if version is None:
        raise Http404(f"No version {number}.")
    return version
