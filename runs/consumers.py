"""WebSocket consumers: authenticate, join the group, send the current state, forward events.

A client joins the group before the state is read, so nothing that happens after the state is
missed; an event may repeat what the state already shows, and clients apply events by step index.
An open socket re-checks its user every WS_RECHECK_SECONDS (log-out, deactivation and a lost
`view_run` close it), and every frame it sends is bounded (runs.frames). No writes here.
"""
import asyncio
import contextlib
import json
import logging
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from runs import frames, selectors
from runs.engine import events
from runs.models import Run
from runs.serializers import RunSerializer

logger = logging.getLogger(__name__)

# Close codes: 4401 not authenticated, 4403 not allowed, 4404 no such run.
NOT_AUTHENTICATED, FORBIDDEN, NOT_FOUND = 4401, 4403, 4404


def _allowed(user: Any, permission: str = "runs.view_run") -> int | None:
    if user is None or not user.is_authenticated:
        return NOT_AUTHENTICATED
    if not user.has_perm(permission):
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


async def _refused_now(session_key: str | None, permission: str) -> int | None:
    """The close code for this session's user as the database has it now (None: still allowed)."""
    if not session_key:
        return NOT_AUTHENTICATED
    # A fresh store: the scope's session was read once, at the handshake.
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = await get_user({"session": store})  # anonymous once logged out, deactivated or re-keyed
    return await database_sync_to_async(_allowed)(user, permission)


def _parsed(text_data: str | None, bytes_data: bytes | None) -> tuple[Any, str | None]:
    """(the message, None) or (None, what is wrong with the frame)."""
    if text_data is None:
        return None, "Send JSON in text frames."
    try:
        return json.loads(text_data), None
    except (ValueError, RecursionError):
        return None, "Not JSON: send a JSON object."


class LiveSocket(AsyncJsonWebsocketConsumer):
    """What every live socket shares: the user's re-check, bounded frames, forwarding events.

    Channels closes stale database connections (a hop to a thread) before every message it
    dispatches. A run event is only forwarded to the browser and reads no database, so it skips
    that; connecting and subscribing, which read, still get it."""

    # The model permission asked at the handshake and at every re-check (experiments' socket asks its own).
    permission = "runs.view_run"
    recheck: asyncio.Task[None] | None = None
    closing = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == events.GROUP_MESSAGE_TYPE:
            if not self.closing:
                await self.run_event(message)
        else:
            await super().dispatch(message)

    async def run_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    async def send_json(self, content: Any, close: bool = False) -> None:
        await self.send(text_data=frames.frame(content), close=close)

    async def _error(self, field: str, error: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "field": field, "error": error, **extra})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        content, problem = _parsed(text_data, bytes_data)
        if problem:
            await self._error("message", problem)
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen here: a message is answered with an error, and otherwise ignored."""
        if not self.closing:
            await self._error("type", "This socket only sends events: subscribe to runs on ws/watch/.")

    async def admit(self) -> bool:
        """Accept, then close with 4401/4403 unless the user may watch runs; re-check it from then on."""
        # Accept first so the close code reaches the browser (a refused handshake has none).
        await self.accept()
        refused = await sync_to_async(_allowed)(self.scope.get("user"), self.permission)
        if refused:
            await self.shut(refused)
            return False
        self.recheck = asyncio.create_task(self._recheck_user())
        return True

    async def shut(self, code: int) -> None:
        self.closing = True
        await self.close(code=code)

    async def _recheck_user(self) -> None:
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        while not self.closing:
            await asyncio.sleep(settings.WS_RECHECK_SECONDS)
            try:
                refused = await _refused_now(session_key, self.permission)
            except Exception:  # the database is away: keep the socket, try again at the next check
                logger.warning("could not re-check the user of a WebSocket", exc_info=True)
                continue
            if refused:
                await self.shut(refused)

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if self.recheck is not None and self.recheck is not asyncio.current_task():
            self.recheck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.recheck
        await self.leave()

    async def leave(self) -> None:
        """Leave the groups joined."""


class RunConsumer(LiveSocket):
    group = ""

    async def connect(self) -> None:
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not await self.admit():
            return
        self.group = events.run_group(run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        refused, state = await _state(run_id, self.scope.get("user"))
        if refused:
            await self.shut(refused)
            return
        await self.send_json({"type": "run.state", "run_id": run_id, "run": state})

    async def leave(self) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)


class RunListConsumer(LiveSocket):
    """Status changes of all runs, for the runs list page."""

    joined = False

    async def connect(self) -> None:
        if not await self.admit():
            return
        await self.channel_layer.group_add(events.RUNS_GROUP, self.channel_name)
        self.joined = True

    async def leave(self) -> None:
        if self.joined:
            await self.channel_layer.group_discard(events.RUNS_GROUP, self.channel_name)


class RunWatchConsumer(LiveSocket):
    """Every event of the runs this socket subscribes to: one socket for many runs.

    A client that starts runs one after another follows them all over one connection instead
    of opening one per run: `{"type": "subscribe", "run_id": N}` sends run N's `run.state` and
    then its events, as `ws/runs/N/` does; `{"type": "unsubscribe", "run_id": N}` stops them.
    """

    MAX_SUBSCRIPTIONS = 1000

    async def connect(self) -> None:
        self.subscribed: set[int] = set()
        await self.admit()

    async def leave(self) -> None:
        for run_id in self.subscribed:
            await self.channel_layer.group_discard(events.run_group(run_id), self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.closing:
            return
        kind = content.get("type") if isinstance(content, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            await self._error("type", 'Send {"type": "subscribe" or "unsubscribe", "run_id": <id>}.')
            return
        run_id = content.get("run_id")
        if not isinstance(run_id, int) or isinstance(run_id, bool) or not 0 < run_id < 2**63:
            await self._error("run_id", "run_id must be a run's id (a positive integer).")
            return
        if kind == "unsubscribe":
            await self._unsubscribe(run_id)
        else:
            await self._subscribe(run_id)

    async def _unsubscribe(self, run_id: int) -> None:
        if run_id in self.subscribed:
            self.subscribed.discard(run_id)
            await self.channel_layer.group_discard(events.run_group(run_id), self.channel_name)

    async def _subscribe(self, run_id: int) -> None:
        if run_id not in self.subscribed and len(self.subscribed) >= self.MAX_SUBSCRIPTIONS:
            await self._error("run_id", f"At most {self.MAX_SUBSCRIPTIONS} runs per socket: unsubscribe from "
                                        "finished runs first.", run_id=run_id)
            return
        group = events.run_group(run_id)
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
