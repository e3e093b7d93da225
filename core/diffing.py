"""Word-level differences between two texts: the comparison of runs and the history of a builder object.

Computed on the server with difflib: each side is a list of segments, marked changed where the
other side differs, so the template renders <del> on the left and <ins> on the right.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# Each word carries the whitespace after it, so the text is rebuilt exactly; words are compared
# without it, so a changed line break or double space is not shown as a changed word.
_TOKEN = re.compile(r"^\s+|\S+\s*")


@dataclass(frozen=True)
class Segment:
    text: str
    changed: bool


@dataclass(frozen=True)
class WordDiff:
    left: list[Segment]
    right: list[Segment]
    changed_words: int

    @property
    def is_same(self) -> bool:
        return self.changed_words == 0


def _merge(segments: list[Segment]) -> list[Segment]:
    """Join neighbours with the same mark, so a changed phrase is one <ins>/<del>."""
    merged: list[Segment] = []
    for segment in segments:
        if merged and merged[-1].changed == segment.changed:
            merged[-1] = Segment(merged[-1].text + segment.text, segment.changed)
        else:
            merged.append(segment)
    return merged


def _words(tokens: list[str]) -> int:
    return sum(1 for token in tokens if not token.isspace())


def _marked(text: str) -> list[Segment]:
    """A changed stretch, its trailing whitespace left unmarked (the highlight ends at the word)."""
    words = text.rstrip()
    return [s for s in (Segment(words, True), Segment(text[len(words):], False)) if s.text]


def word_diff(left: str, right: str) -> WordDiff:
    left_tokens, right_tokens = _TOKEN.findall(left or ""), _TOKEN.findall(right or "")
    # autojunk off: outputs of a chain repeat words a lot, and junk heuristics would hide real changes.
    matcher = difflib.SequenceMatcher(a=[t.strip() for t in left_tokens], b=[t.strip() for t in right_tokens],
                                      autojunk=False)
    left_segments: list[Segment] = []
    right_segments: list[Segment] = []
    changed = 0
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        old, new = "".join(left_tokens[a1:a2]), "".join(right_tokens[b1:b2])
        if op == "equal":
            left_segments.append(Segment(old, False))
            right_segments.append(Segment(new, False))
            continue
        changed += max(_words(left_tokens[a1:a2]), _words(right_tokens[b1:b2]))
        left_segments.extend(_marked(old))
        right_segments.extend(_marked(new))
    return WordDiff(_merge(left_segments), _merge(right_segments), changed)
