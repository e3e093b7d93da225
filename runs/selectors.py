from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from blocks.models import BlockVersion
from core.diffing import Segment, WordDiff, word_diff
from core.internals.django_prefetch import set_prefetched
from core.money import money_text
from core.sql import CompiledValues, concrete_attnames, instances
from core.versioning import content_hash
from payloads.models import PayloadVersion
from releases.cache import release_cached
from releases.models import LabelMove, Release
from releases.selectors import tree_diff
from runs.costs import CostTotal, cost_of_steps, step_cost_text
from runs.models import FINAL_STATUSES, Response, Run, RunRollup, RunStatus, StepRollup
from workflows.models import Workflow, WorkflowVersion
from workflows.services import workflow_snapshot


def run_list() -> QuerySet[Run]:
    return Run.objects.all()


def run_list_with_release() -> QuerySet[Run]:
    """run_list() with each run's release joined (its number, not its tree): the API's lists name it."""
    return run_list().select_related("release").defer("release__snapshot", "release__steps")


_release_brief = CompiledValues(lambda release_id: Release.objects.filter(pk=release_id).values("id", "number", "steps"))


def run_release_brief(run: Run) -> dict[str, Any] | None:
    """The run's release as {id, number, steps} (steps: the versions each step used): from the release
    run_detail attached, else one compiled query, cached on the run. The run detail names it and links
    each step to its versions."""
    if run.release_id is None:
        return None
    if Run.release.is_cached(run):
        return {"id": run.release.pk, "number": run.release.number, "steps": run.release.steps}
    brief = getattr(run, "_release_brief", None)
    if brief is None:
        rows = _release_brief.rows(run.release_id)
        brief = run._release_brief = rows[0] if rows else {"id": run.release_id, "number": None, "steps": []}  # type: ignore[attr-defined]
    return brief


def workflow_to_suggest() -> Workflow | None:
    """The workflow an empty runs list offers to run: the first by name."""
    return Workflow.objects.order_by("name").first()


def run_detail_queryset() -> QuerySet[Run]:
    return Run.objects.prefetch_related(Prefetch("responses", queryset=Response.objects.order_by("index", "item")))


_run_row = CompiledValues(lambda run_id: Run.objects.filter(pk=run_id).values(*concrete_attnames(Run),
                                                                             "release__content_hash"))
_response_rows = CompiledValues(lambda run_id: Response.objects.filter(run_id=run_id).order_by("index", "item")
                                .values(*concrete_attnames(Response)))


def run_detail(run_id: int) -> Run:
    """run_detail_queryset().get(pk=run_id) with its release, from two compiled queries (the release
    from this process's cache): every run start over the API and every live page that connects reads one."""
    rows = _run_row.rows(run_id)
    if not rows:
        raise Run.DoesNotExist(f"Run {run_id} does not exist.")
    digest = rows[0].pop("release__content_hash")
    run = instances(Run, rows)[0]
    Run.release.field.set_cached_value(run, release_cached(run.release_id, digest))
    responses = instances(Response, _response_rows.rows(run_id))
    for response in responses:
        Response.run.field.set_cached_value(response, run)
    set_prefetched(run, "responses", responses)  # run.responses.all() is this list, with no query
    return run


def run_metrics() -> dict[str, Any]:
    """What operators watch: queued, running, failed in the last hour, the oldest queued run."""
    now = timezone.now()
    counts = dict(Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELLING])
                  .values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    oldest = Run.objects.filter(status=RunStatus.QUEUED).order_by("created_at").values_list("created_at", flat=True).first()
    return {
        "queued": counts.get(RunStatus.QUEUED, 0),
        "running": counts.get(RunStatus.RUNNING, 0) + counts.get(RunStatus.CANCELLING, 0),
        # Through the partial index of finished runs (status IN final, finished_at).
        "failed_last_hour": Run.objects.filter(status__in=FINAL_STATUSES, finished_at__gte=now - datetime.timedelta(hours=1))
                                       .filter(status=RunStatus.FAILED).count(),
        "oldest_queued_age_seconds": round((now - oldest).total_seconds()) if oldest else None,
    }


# --- export -------------------------------------------------------------------------------------
EXPORT_FORMAT = "llm-orchestrator/run"
# Names that may hold a credential; removed wherever they appear (request_params come from users).
SECRET_NAMES = ("api_key", "apikey", "api-key", "authorization", "secret", "password", "token_key")


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items()
                if not (isinstance(k, str) and any(name in k.lower() for name in SECRET_NAMES))}
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


def run_export(run: Run) -> dict[str, Any]:
    """One JSON document of a run: the run, its inputs, snapshot and every step's response. No keys:
    the snapshot names endpoints, never their credentials, and secret-looking names are dropped."""
    # DRF is imported only where a run is exported: the admin imports this module at start-up, and
    # engine workers would otherwise load DRF and drf-spectacular (about 18 MB) they never use.
    from runs.serializers import ResponseSerializer, RunListSerializer

    document = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "exported_at": timezone.now().isoformat(),
        "run": {**RunListSerializer(run).data,
                "created_by": run.created_by.get_username() if run.created_by else None},
        "inputs": run.inputs,
        "snapshot": run.snapshot,
        "responses": ResponseSerializer(run.responses.order_by("index", "item"), many=True).data,
    }
    return _without_secrets(document)


# --- comparison of two runs ---------------------------------------------------------------------
@dataclass(frozen=True)
class ComparedValue:
    name: str
    left: str
    right: str
    diff: WordDiff


@dataclass(frozen=True)
class ComparedStep:
    index: int
    output_key: str
    item: int  # 0: the step itself; n >= 1: the n-th item of a map step (matched by index and item)
    left: Response | None
    right: Response | None
    prompt: WordDiff
    output: WordDiff

    @property
    def is_same(self) -> bool:
        return self.prompt.is_same and self.output.is_same and (self.left is None) == (self.right is None)

    @property
    def sides(self) -> list[tuple[str, Response | None, list[Segment], list[Segment], str]]:
        """(side, response, output segments, prompt segments, cost text) for the left and the right run."""
        return [("left", self.left, self.output.left, self.prompt.left, _cost_text(self.left)),
                ("right", self.right, self.output.right, self.prompt.right, _cost_text(self.right))]

    @property
    def cost_delta(self) -> str:
        """The change in cost when both sides have one, in one currency; "" otherwise."""
        if self.left is None or self.right is None:
            return ""
        return cost_delta(_step_total(self.left), _step_total(self.right))

    @property
    def tokens_delta(self) -> str:
        if self.left is None or self.right is None:
            return ""
        return signed(self.right.prompt_tokens + self.right.completion_tokens
                      - self.left.prompt_tokens - self.left.completion_tokens)

    @property
    def latency_delta(self) -> str:
        if self.left is None or self.right is None:
            return ""
        return signed(self.right.latency_ms - self.left.latency_ms, " ms")


def _cost_text(response: Response | None) -> str:
    return step_cost_text(response) if response is not None else ""


def _step_total(response: Response) -> CostTotal:
    total = CostTotal()
    total.add(nano=response.cost_nano, currency=response.cost_currency, estimated=response.cost_estimated)
    return total


def cost_delta(left: CostTotal, right: CostTotal) -> str:
    """right - left when both are fully known (nothing unpriced) and in the same single currency; else ""."""
    if left.unpriced or right.unpriced or not left.known or not right.known:
        return ""
    currencies = {c for c in (*left.nano, *right.nano) if c}
    if len(currencies) > 1:
        return ""
    currency = currencies.pop() if currencies else ""
    delta = sum(right.nano.values()) - sum(left.nano.values())
    if not currency:  # both free
        return "0"
    if not delta:
        return money_text(0, currency)
    return ("+" if delta > 0 else "-") + money_text(abs(delta), currency)


def signed(value: int, unit: str = "") -> str:
    """The change from the first run to the second: +12, -340 ms, 0."""
    return f"{value:+d}{unit}" if value else f"0{unit}"


def _prompt_text(response: Response | None) -> str:
    if response is None:
        return ""
    return "\n\n".join(f"[{m.get('role', '')}]\n{m.get('content', '')}" for m in response.messages or [])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def run_comparison(left: Run, right: Run) -> dict[str, Any]:
    """Two runs side by side: inputs, then each step's prompt and output, with word differences."""
    names = list(dict.fromkeys([*left.inputs, *right.inputs]))
    inputs = [ComparedValue(name, _text(left.inputs.get(name)), _text(right.inputs.get(name)),
                            word_diff(_text(left.inputs.get(name)), _text(right.inputs.get(name))))
              for name in names]
    left_steps = {(r.index, r.item): r for r in left.responses.all()}
    right_steps = {(r.index, r.item): r for r in right.responses.all()}
    steps = []
    for index, item in sorted({*left_steps, *right_steps}):
        a, b = left_steps.get((index, item)), right_steps.get((index, item))
        steps.append(ComparedStep(
            index=index, output_key=(a or b).output_key, item=item, left=a, right=b,  # type: ignore[union-attr]
            prompt=word_diff(_prompt_text(a), _prompt_text(b)),
            output=word_diff(a.output if a else "", b.output if b else ""),
        ))
    left_cost, right_cost = cost_of_steps(left.responses.all()), cost_of_steps(right.responses.all())
    return {"inputs": inputs, "steps": steps,
            "left_cost": left_cost, "right_cost": right_cost, "cost_delta": cost_delta(left_cost, right_cost),
            "tokens_delta": signed(right.total_tokens - left.total_tokens),
            "latency_delta": signed(right.latency_ms - left.latency_ms, " ms"),
            "changed_inputs": sum(1 for i in inputs if not i.diff.is_same),
            "changed_steps": sum(1 for s in steps if not s.is_same)}


# --- statistics ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayStats:
    day: datetime.date
    runs: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    avg_latency_ms: int
    avg_tokens: int
    cost: CostTotal = field(default_factory=CostTotal)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _daily_costs(workflow: Workflow, start: datetime.datetime) -> dict[datetime.date, CostTotal]:
    """The steps' cost per day from the hourly step rollup: per currency, unknown ones counted apart."""
    costs: dict[datetime.date, CostTotal] = {}
    for hour, currency, steps, nano, unpriced in (
            StepRollup.objects.filter(workflow=workflow, hour__gte=start)
            .values_list("hour", "cost_currency", "steps", "cost_nano", "unpriced")):
        total = costs.setdefault(timezone.localtime(hour).date(), CostTotal())
        if unpriced:
            total.add(nano=None, currency=None, count=unpriced)
        if steps > unpriced:
            total.add(nano=nano, currency=currency)
    return costs


def workflow_daily_stats(workflow: Workflow, *, days: int = 30, today: datetime.date | None = None) -> list[DayStats]:
    """Finished runs of the workflow per day (the server's time zone), oldest first; days without runs
    are zeros. Read from the hourly rollups, so it costs the same at a thousand runs or a million."""
    today = today or timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    totals: dict[datetime.date, list[int]] = {}
    for row in (RunRollup.objects.filter(workflow=workflow, hour__gte=start)
                .values_list("hour", "runs", "prompt_tokens", "completion_tokens", "latency_ms")):
        day = timezone.localtime(row[0]).date()
        sums = totals.setdefault(day, [0, 0, 0, 0])
        for i, value in enumerate(row[1:]):
            sums[i] += value
    costs = _daily_costs(workflow, start)
    stats = []
    for offset in range(days):
        day = first + datetime.timedelta(days=offset)
        runs, prompt, completion, latency = totals.get(day, (0, 0, 0, 0))
        stats.append(DayStats(day=day, runs=runs, prompt_tokens=prompt, completion_tokens=completion,
                              latency_ms=latency, avg_latency_ms=round(latency / runs) if runs else 0,
                              avg_tokens=round((prompt + completion) / runs) if runs else 0,
                              cost=costs.get(day, CostTotal())))
    return stats


# --- Releases ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Impact:
    runs: int
    succeeded: int
    failed: int
    tokens: int
    median_latency_ms: int | None

    @property
    def success_rate(self) -> float | None:
        """Of the finished runs that succeeded or failed (cancelled ones are not counted)."""
        finished = self.succeeded + self.failed
        return round(self.succeeded / finished, 4) if finished else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "success_rate": self.success_rate}


def _median_latency(release_id: int, succeeded: int) -> int | None:
    if not succeeded:
        return None
    values = list(Run.objects.filter(release_id=release_id, status=RunStatus.SUCCEEDED).order_by("latency_ms")
                  .values_list("latency_ms", flat=True)[(succeeded - 1) // 2:succeeded // 2 + 1])
    return round(sum(values) / len(values))


def version_name(*, block_version: int | None, payload_version: int | None, workflow_version: int | None) -> str:
    """How the runs list names the version it is filtered by: block “tone” v3 (the first given)."""
    for kind, model, pk in (("block", BlockVersion, block_version), ("payload", PayloadVersion, payload_version),
                            ("workflow", WorkflowVersion, workflow_version)):
        if pk:
            version = model.objects.filter(pk=pk).only("name", "number").first()
            return f"{kind} “{version.name}” v{version.number}" if version else f"an unknown {kind} version"
    return ""


def release_run_count(release_id: int) -> int:
    """Every run of the release, finished or not (a range of the (release, status, latency_ms) index)."""
    return Run.objects.filter(release_id=release_id).count()


def release_impact(release_ids: list[int]) -> dict[int, Impact]:
    """Per release: its finished runs, how many succeeded and failed, tokens (from the hourly rollup,
    so a release of a hundred thousand runs costs what one of ten does), and the median latency of
    the succeeded runs (one read of the (release, status, latency_ms) index per release)."""
    rows = (RunRollup.objects.filter(release_id__in=release_ids).values("release_id")
            .annotate(finished=Sum("runs"), ok=Sum("runs", filter=Q(status=RunStatus.SUCCEEDED)),
                      bad=Sum("runs", filter=Q(status=RunStatus.FAILED)),
                      tokens=Sum("prompt_tokens") + Sum("completion_tokens")))
    found = {row["release_id"]: row for row in rows}
    impact = {}
    for release_id in release_ids:
        row = found.get(release_id, {})
        succeeded = row.get("ok") or 0
        impact[release_id] = Impact(runs=row.get("finished") or 0, succeeded=succeeded, failed=row.get("bad") or 0,
                                    tokens=row.get("tokens") or 0, median_latency_ms=_median_latency(release_id, succeeded))
    return impact


def runs_labelled(workflow_id: int, label: str) -> Q:
    """A filter on runs: those whose release carried `label` when they started (from the label's log)."""
    moves = list(LabelMove.objects.filter(workflow_id=workflow_id, label=label).order_by("moved_at", "id")
                 .values("to_release_id", "moved_at"))
    return _label_windows(moves)


def runs_labelled_anywhere(label: str, *, workflow_ids: list[int] | None = None) -> Q:
    """runs_labelled OR-ed over every workflow that has had `label` (or over those given), from one read
    of the log. Moves of deleted workflows are left out: their windows cannot be told apart."""
    moves = LabelMove.objects.filter(label=label, workflow_id__isnull=False)
    if workflow_ids is not None:
        moves = moves.filter(workflow_id__in=workflow_ids)
    by_workflow: dict[int, list[dict[str, Any]]] = {}
    for move in moves.order_by("workflow_id", "moved_at", "id").values("workflow_id", "to_release_id", "moved_at"):
        by_workflow.setdefault(move["workflow_id"], []).append(move)
    condition = Q(pk__in=[])
    for workflow_moves in by_workflow.values():
        condition |= _label_windows(workflow_moves)
    return condition


def _label_windows(moves: list[dict[str, Any]]) -> Q:
    """Runs of each release the label pointed at while it pointed there (moves of one workflow, oldest first)."""
    condition = Q(pk__in=[])
    for move, following in zip(moves, [*moves[1:], None], strict=True):
        if move["to_release_id"] is None:
            continue
        window = Q(release_id=move["to_release_id"], created_at__gte=move["moved_at"])
        if following is not None:
            window &= Q(created_at__lt=following["moved_at"])
        condition |= window
    return condition


def run_changes(run: Run, *, against: Run | None = None) -> dict[str, Any]:
    """What changed since the run: its tree (old) against the workflow's tree as it stands, or against
    another run's (new). Raises Workflow.DoesNotExist when comparing with a deleted workflow's current tree."""
    if against is None:
        if run.workflow_id is None:
            raise Workflow.DoesNotExist(f"Run {run.pk}'s workflow “{run.workflow_name}” was deleted; "
                                        "compare with another run instead.")
        workflow = Workflow.objects.get(pk=run.workflow_id)
        snapshot = workflow_snapshot(workflow)
        release = (Release.objects.filter(workflow=workflow, content_hash=content_hash(snapshot))
                   .values("id", "number").first())
        side = {"kind": "current", "run": None, "release": release}
    else:
        snapshot = against.snapshot
        brief = run_release_brief(against)
        side = {"kind": "run", "run": against.pk,
                "release": None if brief is None else {"id": brief["id"], "number": brief["number"]}}
    brief = run_release_brief(run)
    return {"run": run.pk, "release": None if brief is None else {"id": brief["id"], "number": brief["number"]},
            "against": side, **tree_diff(run.snapshot or {}, snapshot).as_dict()}
