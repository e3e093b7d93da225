"""The data migration that gives every run made before releases existed its release, built from the
run's own snapshot (what it ran). Runs with the same tree share one. The versions a rebuilt release
names are found by content: for each block text the block version with that name and text, for each
payload and the workflow the version saved last before the release's first run (or, when versions
were themselves added by a migration after the run, the first version if it still matches)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from core.versioning import content_hash

MESSAGE = "rebuilt from the snapshots of runs made before releases"


def _before(versions: list[Any], moment: Any, matches: Any) -> Any:
    """The last version saved before `moment`, else the first if it matches the tree."""
    earlier = [v for v in versions if v.created_at <= moment]
    if earlier:
        return earlier[-1]
    return versions[0] if versions and matches(versions[0]) else None


class _Versions:
    def __init__(self, registry: Any) -> None:
        self.blocks: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for version in registry.get_model("blocks", "BlockVersion").objects.order_by("created_at", "id"):
            self.blocks[(version.content.get("name", version.name), version.content.get("content", ""))].append(version)
        self.payloads: dict[int, list[Any]] = defaultdict(list)
        for version in registry.get_model("payloads", "PayloadVersion").objects.order_by("number"):
            self.payloads[version.payload_id].append(version)
        self.workflows: dict[int, list[Any]] = defaultdict(list)
        for version in registry.get_model("workflows", "WorkflowVersion").objects.order_by("number"):
            self.workflows[version.workflow_id].append(version)

    def block(self, spec: dict[str, Any], moment: Any) -> Any:
        found = self.blocks.get((spec.get("block", ""), spec.get("content", "")), [])
        earlier = [v for v in found if v.created_at <= moment]
        return (earlier or found or [None])[-1]

    def payload(self, step: dict[str, Any], moment: Any) -> Any:
        names = [(b.get("block"), b.get("role")) for b in step["blocks"]]
        return _before(self.payloads.get(step["payload"].get("id"), []), moment,
                       lambda v: [(b.get("block"), b.get("role")) for b in v.content.get("blocks", [])] == names)

    def workflow(self, workflow_id: int | None, snapshot: dict[str, Any], moment: Any) -> Any:
        keys = [step["output_key"] for step in snapshot.get("steps", [])]
        return _before(self.workflows.get(workflow_id, []), moment,
                       lambda v: [s.get("output_key") for s in v.content.get("steps", [])] == keys)


def _release(registry: Any, versions: _Versions, *, workflow_id: int | None, name: str, number: int,
             snapshot: dict[str, Any], digest: str, first: Any) -> Any:
    steps, payload_versions, block_versions = [], [], []
    for step in snapshot.get("steps", []):
        payload_version = versions.payload(step, first)
        used = [versions.block(spec, first) for spec in step.get("blocks", [])]
        payload_versions.append(payload_version)
        block_versions += used
        steps.append({
            "index": step["index"], "output_key": step["output_key"], "payload_id": step["payload"].get("id"),
            "payload_version": payload_version.number if payload_version else None,
            "payload_version_id": payload_version.pk if payload_version else None,
            "blocks": [{"block_id": v.block_id if v else None, "block_version": v.number if v else None,
                        "block_version_id": v.pk if v else None} for v in used],
        })
    release = registry.get_model("releases", "Release").objects.create(
        workflow_id=workflow_id, workflow_name=name, number=number, content_hash=digest, snapshot=snapshot,
        workflow_version=versions.workflow(workflow_id, snapshot, first), steps=steps, message=MESSAGE)
    release.payload_versions.set({v.pk for v in payload_versions if v is not None})
    release.block_versions.set({v.pk for v in block_versions if v is not None})
    return release


def releases_from_run_snapshots(*, registry: Any) -> None:
    Run = registry.get_model("runs", "Run")
    Release = registry.get_model("releases", "Release")
    versions = _Versions(registry)
    found: dict[tuple[Any, str], int] = {}
    numbers: dict[Any, int] = defaultdict(int)
    for release in Release.objects.values("id", "workflow_id", "workflow_name", "number", "content_hash"):
        owner = release["workflow_id"] or release["workflow_name"]
        found[(owner, release["content_hash"])] = release["id"]
        numbers[owner] = max(numbers[owner], release["number"])
    chosen: dict[int, list[int]] = defaultdict(list)
    rows = (Run.objects.filter(release__isnull=True).order_by("created_at", "id")
            .values("id", "workflow_id", "workflow_name", "snapshot", "created_at"))
    for run in rows.iterator(chunk_size=2000):
        snapshot = run["snapshot"] or {"workflow": {"name": run["workflow_name"]}, "inputs": [], "steps": []}
        owner, digest = run["workflow_id"] or run["workflow_name"], content_hash(snapshot)
        if (owner, digest) not in found:
            numbers[owner] += 1
            found[(owner, digest)] = _release(registry, versions, workflow_id=run["workflow_id"],
                                              name=run["workflow_name"], number=numbers[owner], snapshot=snapshot,
                                              digest=digest, first=run["created_at"]).pk
        chosen[found[(owner, digest)]].append(run["id"])
    for release_id, run_ids in chosen.items():
        for start in range(0, len(run_ids), 500):
            Run.objects.filter(pk__in=run_ids[start:start + 500]).update(release_id=release_id)
