"""The experiment page's WebSocket `ws/experiments/<id>/`: authenticate (experiments.view_experiment,
re-checked as the run sockets do), join the experiment's group, send its progress now, then forward
every `experiment.progress` (docs/events.md). No writes here."""
from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from experiments import events
from experiments.models import Experiment
from runs.consumers import NOT_FOUND, LiveSocket


@database_sync_to_async
def _progress(experiment_id: int) -> dict[str, Any] | None:
    experiment = Experiment.objects.filter(pk=experiment_id).first()
    return events.progress(experiment) if experiment is not None else None


class ExperimentConsumer(LiveSocket):
    permission = "experiments.view_experiment"
    group = ""

    async def connect(self) -> None:
        experiment_id = int(self.scope["url_route"]["kwargs"]["experiment_id"])
        if not await self.admit():
            return
        # Join before reading the progress: nothing that happens after it is missed.
        self.group = events.group(experiment_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        progress = await _progress(experiment_id)
        if progress is None:
            await self.shut(NOT_FOUND)
            return
        await self.send_json(progress)

    async def experiment_event(self, message: dict[str, Any]) -> None:
        if not self.closing:
            await self.send_json(message["event"])

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not self.closing:
            await self._error("type", "This socket only sends the experiment's progress.")

    async def leave(self) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
