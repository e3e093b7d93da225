"""Local token counts for when a server sends no usage, and for previews.

bpe-openai ships its encodings inside the wheel, so nothing is downloaded at run time (tiktoken
would fetch them). Counts for non-OpenAI models are estimates with an OpenAI encoding.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import bpe_openai

# Per chat message the OpenAI format adds a few tokens of framing (role, separators).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


@cache
def _encoding(name: str) -> bpe_openai.Encoding:
    # Imported on first use: its tables are ~70 MB, and most servers send usage themselves.
    import bpe_openai

    return bpe_openai.get_encoding(name)


def encoding_name(model: str) -> str:
    legacy = ("gpt-4-", "gpt-3.5", "gpt-4")
    if model.startswith(legacy) and not model.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5")):
        return "cl100k_base"
    return "o200k_base"


def count(text: str, model: str = "") -> int:
    if not text:
        return 0
    return len(_encoding(encoding_name(model)).encode(text))


def count_messages(messages: list[dict[str, str]], model: str = "") -> int:
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + count(message.get("content") or "", model) + count(message.get("role", ""), model)
    return total
