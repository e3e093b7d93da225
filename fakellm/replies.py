"""Readable, deterministic replies of the fake LLM (`manage.py fake_llm`, the demo's default).

The same prompt always gets the same text: the words are the prompt's own, the phrasing is picked
by a generator seeded from the prompt's hash. The instruction decides the shape: an outline
(numbered, or bulleted when bullets are asked for), a one-sentence summary, or a few sentences.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from itertools import pairwise

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_TOPIC = re.compile(r"\b(?:about|on|regarding|of)\s+([^.:;,!?\n]+)", re.IGNORECASE)
# A topic phrase ends where the instruction goes on ("... about tides into one paragraph").
_TOPIC_END = frozenset("into in for with as using so that which and then to by from".split())
_ARTICLES = frozenset(("the", "a", "an"))
_FILLER_TERMS = ["the basics", "everyday examples", "the main causes", "common questions", "practical effects",
                 "the wider picture"]
# Templates name the topic and terms as objects, so no verb has to agree with them.
_SENTENCES = [
    "This is a short look at {topic}.",
    "At the heart of {topic}, you find {term}.",
    "A good way to understand {topic} is to start with {term}.",
    "Looking at {term} makes {topic} easier to follow.",
    "People who study {topic} often mention {term} and {other}.",
    "Anyone curious about {topic} soon runs into {term}.",
    "The details of {term} explain much of {topic}.",
    "It helps to connect {term} with {other}.",
    "With {term} in mind, the rest of {topic} falls into place.",
]
_SUMMARIES = [
    "In short, the story of {topic} comes down to {term} and {other}.",
    "The key point: understanding {topic} means understanding {term} and {other}.",
    "All in all, {term} and {other} explain most of {topic}.",
]
_OUTLINE = [
    "Introduction to {topic}",
    "The role of {term}",
    "{Other} and its effect on {topic}",
    "{Third} in everyday life",
    "Conclusion: what to remember about {topic}",
]
_STOPWORDS = frozenset("""
a an the and or but if then so of to in on at by for with about into from as is are was were be been being
this that these those it its you your we our us i me my he she they them their his her not no yes do does
can could should would will just very more most some any each every than also only own same such too
there here what why how which who where when hello thanks thank bullet bullets bulleted numbered
write short long brief one two three four five sentence sentences paragraph paragraphs outline outlines
summary summarize summarise expand explain describe list give make answer please using plain english
without preamble concise technical writer assistant helpful tell reply respond text following below above
""".split()) | {w.lower() for t in _SENTENCES + _SUMMARIES + _OUTLINE + _FILLER_TERMS for w in _WORD.findall(t)}


def reply_kind(prompt: str) -> str:
    """`outline`, `bullets`, `summary` or `prose`, read from the instruction (its first line first)."""
    lines = [line for line in prompt.splitlines() if line.strip()]
    for text in (lines[0] if lines else "", prompt):
        kind = _kind_in(text.lower())
        if kind:
            return kind
    return "prose"


def _kind_in(text: str) -> str | None:
    if re.search(r"\bsummar(?:y|ies|i[sz]e)|\btl;?dr\b|\bin one sentence\b", text):
        return "summary"
    if re.search(r"\bparagraph|\bexpand\b|\bessay\b", text):
        return "prose"
    if re.search(r"\bbullet", text):
        return "bullets"
    if re.search(r"\boutline\b|\blist\b|\bsteps\b", text):
        return "outline"
    return None


def _topic(prompt: str) -> str:
    match = _TOPIC.search(prompt.splitlines()[0] if prompt.strip() else "")
    words = match.group(1).split() if match else []
    while words and words[0].lower() in _ARTICLES:
        words = words[1:]
    phrase: list[str] = []
    for word in words[:5]:
        if word.lower() in _TOPIC_END:
            break
        if _WORD.fullmatch(word):
            phrase.append(word)
    if phrase:
        return " ".join(phrase)
    return _frequent_phrase(prompt) or "the topic"


def _frequent_phrase(prompt: str) -> str:
    """The pair of content words seen together most (at least twice), else the most frequent content word."""
    words = [w.lower() for w in _WORD.findall(prompt)]
    content = [w if w not in _STOPWORDS and len(w) > 2 else "" for w in words]
    pairs = Counter(f"{a} {b}" for a, b in pairwise(content) if a and b)
    if pairs and pairs.most_common(1)[0][1] >= 2:
        return pairs.most_common(1)[0][0]
    singles = Counter(w for w in content if w)
    return singles.most_common(1)[0][0] if singles else ""


def _keywords(prompt: str) -> list[str]:
    """Content words in order of appearance; a filler phrase of an earlier reply stays one term."""
    lowered_prompt = prompt.lower()
    seen: dict[str, None] = {term: None for term in _FILLER_TERMS if term in lowered_prompt}
    for word in _WORD.findall(prompt):
        lowered = word.lower().strip("'-")
        if len(lowered) > 2 and lowered not in _STOPWORDS:
            seen.setdefault(lowered)
    return list(seen)


def _fill(template: str, topic: str, terms: list[str]) -> str:
    term, other, third = terms[0], terms[1], terms[2]
    text = template.format(topic=topic, term=term, other=other, third=third, Other=other, Third=third)
    return text[0].upper() + text[1:]


def readable_text(prompt: str, words: int = 20) -> str:
    """A reply made of the prompt's words; prose runs to about `words` words."""
    rng = random.Random(hashlib.sha1(prompt.encode()).digest())
    keywords = _keywords(prompt)
    topic = _topic(prompt)
    topic_words = set(topic.lower().split())
    terms = [k for k in keywords if k not in topic_words]
    terms += [t for t in _FILLER_TERMS if t not in terms]
    kind = reply_kind(prompt)
    if kind == "summary":
        return _fill(rng.choice(_SUMMARIES), topic, terms)
    if kind in ("outline", "bullets"):
        marks = ["-"] * len(_OUTLINE) if kind == "bullets" else [f"{n}." for n in range(1, len(_OUTLINE) + 1)]
        return "\n".join(f"{mark} {_fill(item, topic, terms)}" for mark, item in zip(marks, _OUTLINE, strict=True))
    return _prose(rng, topic, terms, words)


def _prose(rng: random.Random, topic: str, terms: list[str], words: int) -> str:
    """An opening sentence, then sentences in a seeded order until about `words` words."""
    templates = _SENTENCES[1:]
    rng.shuffle(templates)
    sentences = [_fill(_SENTENCES[0], topic, terms)]
    count = len(sentences[0].split())
    for i, template in enumerate(templates * 4):
        if count >= words and len(sentences) >= 2:
            break
        sentence = _fill(template, topic, terms[i % len(terms):] + terms)
        sentences.append(sentence)
        count += len(sentence.split())
    return " ".join(sentences)


def readable_pieces(text: str) -> list[str]:
    """The text as streamed chunks: each word with the whitespace before it."""
    return re.findall(r"\s*\S+", text)
