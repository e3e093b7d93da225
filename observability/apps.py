from __future__ import annotations

import sys

from django.apps import AppConfig
from django.conf import settings

from core.processes import is_worker


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        if settings.METRICS_ENABLED:
            from observability import metrics

            metrics.install()
            if settings.METRICS_WORKER_PORT and is_worker(sys.argv):
                metrics.worker_server_start(address=settings.METRICS_WORKER_ADDRESS, port=settings.METRICS_WORKER_PORT)
        if settings.OTEL_TRACES_ENDPOINT:
            from observability import tracing  # the OpenTelemetry SDK is loaded only where traces are on

            tracing.install()
