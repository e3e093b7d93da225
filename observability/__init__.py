"""Open standards for what the orchestrator does: OpenTelemetry traces of runs and Prometheus metrics.

It watches the engine through the observers of `runs.engine.events` (registered at start-up in
`apps.py`) and reads the stored runs; nothing imports it but the project's wiring.
"""
