"""Releases read once per process: a release never changes, and (id, content hash) names one content.

The engine reads a release's steps at every claim and the run detail its number and steps at every
read; both take it from here. Tests empty the database under it and clear it (conftest.py).
"""
from releases.models import Release

_releases: dict[tuple[int, str], Release] = {}
CACHED = 256


def release_cached(release_id: int, content_hash: str) -> Release:
    release = _releases.get((release_id, content_hash))
    if release is None:
        if len(_releases) >= CACHED:
            _releases.clear()
        release = _releases[(release_id, content_hash)] = Release.objects.get(pk=release_id)
    return release


def clear() -> None:
    _releases.clear()
