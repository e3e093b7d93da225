"""WebSocket consumers: authenticate, join the group, send the current state, forward events.

A client joins the group before the state is read, so nothing that happens after the state is
missed; an event may repeat what the state already shows, and clients apply events by step index.
No writes here.
"""
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from runs import events, selectors
from runs.models import Run
from runs.serializers import RunSerializer

# Close codes: 4401 not authenticated, 4403 not allowed, 4404 no such run.
NOT_AUTHENTICATED, FORBIDDEN, NOT_FOUND = 4401, 4403, 4404


def _allowed(user: Any) -> int | None:
    if user is None or not user.is_authenticated:
        return NOT_AUTHENTICATED
    if not user.has_perm("runs.view_run"):
        return FORBIDDEN
    return None


@sync_to_async
def _state(run_id: int, user: Any) -> tuple[int | None, dict[str, Any] | None]:
    refused = _allowed(user)
    if refused:
        return refused, None
    try:
        return None, RunSerializer(selectors.run_detail(run_id)).data
    except Run.DoesNotExist:
        return NOT_FOUND, None


class _EventForwarder(AsyncJsonWebsocketConsumer):
    """Channels closes stale database connections (a hop to a thread) before every message it
    dispatches. A run event is only forwarded to the browser and reads no database, so it skips
    that; connecting and subscribing, which read, still get it."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == events.GROUP_MESSAGE_TYPE:
            await self.run_event(message)
        else:
            await super().dispatch(message)

    async def run_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])


class RunConsumer(_EventForwarder):
    group = ""

    async def connect(self) -> None:
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        # Accept first so the close code reaches the browser (a refused handshake has none).
        await self.accept()
        refused = await sync_to_async(_allowed)(self.scope.get("user"))
        if refused:
            await self.close(code=refused)
            return
        self.group = events.run_group(run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        refused, state = await _state(run_id, self.scope.get("user"))
        if refused:
            await self.close(code=refused)
            return
        await self.send_json({"type": "run.state", "run_id": run_id, "run": state})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen; anything sent is ignored."""


class RunListConsumer(_EventForwarder):
    """Status changes of all runs, for the runs list page."""

    joined = False

    async def connect(self) -> None:
        await self.accept()
        refused = await sync_to_async(_allowed)(self.scope.get("user"))
        if refused:
            await self.close(code=refused)
            return
        await self.channel_layer.group_add(events.RUNS_GROUP, self.channel_name)
        self.joined = True

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(events.RUNS_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen; anything sent is ignored."""


class RunWatchConsumer(_EventForwarder):
    """Every event of the runs this socket subscribes to: one socket for many runs.

    A client that starts runs one after another follows them all over one connection instead
    of opening one per run: `{"type": "subscribe", "run_id": N}` sends run N's `run.state` and
    then its events, as `ws/runs/N/` does; `{"type": "unsubscribe", "run_id": N}` stops them.
    """

    MAX_SUBSCRIPTIONS = 1000

    async def connect(self) -> None:
        self.subscribed: set[int] = set()
        await self.accept()
        refused = await sync_to_async(_allowed)(self.scope.get("user"))
        if refused:
            await self.close(code=refused)

    async def disconnect(self, code: int) -> None:
        for run_id in self.subscribed:
            await self.channel_layer.group_discard(events.run_group(run_id), self.channel_name)

    async def _error(self, field: str, error: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "field": field, "error": error, **extra})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            await self._error("type", 'Send {"type": "subscribe" or "unsubscribe", "run_id": <id>}.')
            return
        run_id = content.get("run_id")
        if not isinstance(run_id, int) or isinstance(run_id, bool) or not 0 < run_id < 2**63:
            await self._error("run_id", "run_id must be a run's id (a positive integer).")
            return
        group = events.run_group(run_id)
        if kind == "unsubscribe":
            if run_id in self.subscribed:
                self.subscribed.discard(run_id)
                await self.channel_layer.group_discard(group, self.channel_name)
            return
        if run_id not in self.subscribed and len(self.subscribed) >= self.MAX_SUBSCRIPTIONS:
            await self._error("run_id", f"At most {self.MAX_SUBSCRIPTIONS} runs per socket: unsubscribe from "
                                        "finished runs first.", run_id=run_id)
            return
        # Join before reading the state, as RunConsumer does: nothing after the state is missed.
        await self.channel_layer.group_add(group, self.channel_name)
        self.subscribed.add(run_id)
        refused, state = await _state(run_id, self.scope.get("user"))
        if refused:
            self.subscribed.discard(run_id)
            await self.channel_layer.group_discard(group, self.channel_name)
            await self._error("run_id", "No such run." if refused == NOT_FOUND else "Not allowed.", run_id=run_id)
            return
        await self.send_json({"type": "run.state", "run_id": run_id, "run": state})

    async def run_event(self, message: dict[str, Any]) -> None:
        # An event already queued for a run just unsubscribed from is dropped.
        if message["event"]["run_id"] in self.subscribed:
            await self.send_json(message["event"])
