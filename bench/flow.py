"""`make bench-flow`: steps side by side and a map, against their ideal wall time (issue 22).

    .venv/bin/python bench/flow.py            # 5 repetitions of each shape
    .venv/bin/python bench/flow.py --reps 2

Against one fake server (bench/fake_server.py, 100 ms a reply), in a temp SQLite file, the engine
runs (execute_run, as the embedded executor does):
- a 4-wide fan-out: four steps that read only the input, then nothing else. Ideal: one latency;
- a 100-item map at max_parallel 10. Ideal: 100 / 10 x the latency.
It reports each shape's median wall time over the ideal (target: at most 1.2) and writes
bench/results/flow-<time>.json. A straight chain's figures are `make bench`'s.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def configure(path: str) -> None:
    os.environ.update({"DJANGO_SETTINGS_MODULE": "orchestrator.settings", "DATABASE_URL": f"sqlite:///{path}",
                       "DEBUG": "0", "SECRET_KEY": "bench-flow-not-for-production", "LOG_LEVEL": "WARNING",
                       "RUNS_BACKEND": "embedded", "METRICS_TOKEN": "bench-flow",
                       "LLM_ENDPOINT_ALLOW_LOOPBACK": "1"})
    os.environ.pop("TEST_DATABASE_NAME", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def workflows(base_url: str) -> dict[str, object]:
    from django.core.management import call_command

    from blocks.models import Block
    from llm.models import Endpoint
    from payloads.models import Payload, PayloadBlock
    from workflows.models import Step, Workflow

    call_command("migrate", verbosity=0)
    endpoint = Endpoint(name="bench", base_url=f"{base_url}/v1", default_model="gpt-4o-mini")
    endpoint.set_api_key("sk-bench")
    endpoint.save()

    def payload(name: str, text: str) -> Payload:
        made = Payload.objects.create(name=name, endpoint=endpoint)
        PayloadBlock.objects.create(payload=made, block=Block.objects.create(name=name, content=text), role="user",
                                    position=0)
        return made

    fan = Workflow.objects.create(name="fan-out", inputs=[{"name": "doc"}])
    for position, key in enumerate(["short", "bullets", "tweet", "title"]):
        Step.objects.create(workflow=fan, payload=payload(f"fan-{key}", f"{key} of {{{{ doc }}}}"), output_key=key,
                            position=position)
    mapped = Workflow.objects.create(name="map", inputs=[{"name": "claims"}])
    Step.objects.create(workflow=mapped, payload=payload("check", "Check: {{ claim }}"), output_key="checks",
                        position=0, for_each="claims", item_as="claim", max_parallel=10)
    return {"fan-out": fan, "map": mapped}


async def timed(workflow: object, inputs: dict[str, str]) -> float:
    from asgiref.sync import sync_to_async

    from runs.engine import execute_run
    from runs.services import run_start

    run = await sync_to_async(run_start)(workflow=workflow, inputs=inputs, user=None)
    started = time.perf_counter()
    status = await execute_run(run.pk)
    elapsed = time.perf_counter() - started
    if status != "succeeded":
        raise RuntimeError(f"run {run.pk} ended {status}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=100)
    a = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from run import machine, start_fake_server

    fake, base = start_fake_server(a.latency_ms, 20, None)
    latency = a.latency_ms / 1000
    try:
        with tempfile.TemporaryDirectory() as folder:
            configure(os.path.join(folder, "flow.sqlite3"))
            made = workflows(base)
            ideal = {"fan-out": latency, "map": 100 / 10 * latency}
            inputs = {"fan-out": lambda i: {"doc": f"d{i}"},
                      "map": lambda i: {"claims": json.dumps([f"r{i}-c{n}" for n in range(100)])}}

            async def measure() -> dict[str, list[float]]:
                walls: dict[str, list[float]] = {name: [] for name in made}
                for i in range(a.reps + 1):  # the first of each is a warm-up
                    for name, workflow in made.items():
                        wall = await timed(workflow, inputs[name](i))
                        if i:
                            walls[name].append(wall)
                from llm import client

                await client.aclose_all()
                return walls

            walls = asyncio.run(measure())
    finally:
        fake.terminate()
        fake.wait(10)
    result = {"machine": machine(), "latency_ms": a.latency_ms, "reps": a.reps, "shapes": {
        name: {"ideal_s": ideal[name], "median_s": round(statistics.median(w), 4),
               "ratio": round(statistics.median(w) / ideal[name], 3), "walls_s": [round(x, 4) for x in w]}
        for name, w in walls.items()}}
    for name, shape in result["shapes"].items():
        print(f"{name:8} ideal {shape['ideal_s']:.2f} s  median {shape['median_s']:.3f} s  ratio {shape['ratio']:.2f}")
    out = HERE / "results" / f"flow-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0 if all(shape["ratio"] <= 1.2 for shape in result["shapes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
