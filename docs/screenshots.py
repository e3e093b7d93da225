"""`make screenshots`: a PNG of each page in docs/images/, from headless Chromium against a seeded server.

Everything runs on a throw-away SQLite database: the fake LLM, `seed_demo`, two runs of the demo
workflow, then daphne; Chromium logs in and photographs each page at laptop width, and the runs list at
phone width. Before daphne starts, labels are set and moved and a second release is cut and run (one run
failing), so the Releases page, the release diff and the run page's release have something to show, at
both widths.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
PASSWORD = "screenshots-only"
REASONED_OUTLINE = (
    "<think>The reader wants an outline about tidal energy. Start with where the energy comes from, "
    "then how it is captured, then what holds it back. Five points are enough; keep each to one line.</think>"
    "1. Tides: the moon's pull lifts the sea twice a day.\n2. Barrages and lagoons hold water back and "
    "release it through turbines.\n3. Stream turbines sit in fast currents, like wind turbines under water.\n"
    "4. Tides are predictable years ahead, unlike wind and sun.\n5. Costs, few good sites and marine life hold it back."
)
PHONE = {"width": 390, "height": 844}
# Control flow (issue 22), seeded after the other pages are photographed so they stay as they were:
# "Claims review" lists claims and, beside it, translates only when asked; then checks each claim (a map).
# Its finished run is written directly, one item failed under on_error skip, so the grid shows each state.
FLOW = """
import json
from django.utils import timezone
from blocks.services import block_create
from llm.models import Endpoint
from payloads.services import payload_create
from runs.models import Response, Run
from releases.services import release_for_run
from workflows.services import workflow_create, workflow_snapshot
from workflows.management.commands.seed_demo import MOCK_ENDPOINT_NAME
endpoint = Endpoint.objects.get(name=MOCK_ENDPOINT_NAME)
def payload(name, text):
    return payload_create(name=name, endpoint=endpoint, blocks=[{"block": block_create(name=name, content=text), "role": "user"}])
workflow = workflow_create(name="Claims review", inputs=[{"name": "text"}, {"name": "language", "default": "en"}], max_parallel=4, steps=[
    {"payload": payload("claims-list", "List the claims of this text as a JSON list: {{ text }}"), "output_key": "claims"},
    {"payload": payload("claims-translate", "Translate to {{ language }}: {{ text }}"), "output_key": "translated",
     "when": 'language != "en"', "default": "(already English)"},
    {"payload": payload("claims-check", "Is this claim supported by the text? {{ claim }}"), "output_key": "checked",
     "for_each": "claims", "item_as": "claim", "on_error": "skip"},
    {"payload": payload("claims-report", "Write a short report. Checks: {{ checked }}. Text: {{ translated }}"),
     "output_key": "report"}])
claims = [f"Claim {n}: tides are driven by the moon." for n in range(1, 13)]
now = timezone.now()
run = Run.objects.create(workflow=workflow, workflow_name=workflow.name, status="succeeded", step_count=4, next_step=4,
                         inputs={"text": "Tides rise and fall twice a day.", "language": "en"}, started_at=now, finished_at=now,
                         release_id=release_for_run(workflow=workflow, snapshot=workflow_snapshot(workflow)),
                         output="Eleven of twelve claims hold; one could not be checked.")
row = {"run": run, "endpoint_name": endpoint.name, "model": endpoint.default_model, "latency_ms": 420,
       "prompt_tokens": 40, "completion_tokens": 12}
Response.objects.create(**row, index=0, output_key="claims", payload_name="claims-list", status="succeeded",
                        output=json.dumps(claims), output_json=claims, messages=[{"role": "user", "content": "List the claims ..."}])
Response.objects.create(run=run, index=1, output_key="translated", payload_name="claims-translate", status="skipped",
                        output="(already English)")
answers = []
for n, claim in enumerate(claims, start=1):
    failed = n == 7
    answers.append(None if failed else "supported")
    Response.objects.create(**row, index=2, item=n, item_value=claim, output_key="checked", payload_name="claims-check",
                            status="failed" if failed else "succeeded", output="" if failed else "supported",
                            error="HTTP 500 from the server (3 attempts)" if failed else "",
                            messages=[{"role": "user", "content": f"Is this claim supported by the text? {claim}"}])
Response.objects.create(run=run, index=2, output_key="checked", payload_name="claims-check", status="succeeded",
                        output=json.dumps(answers), output_json=answers, endpoint_name=endpoint.name, latency_ms=0)
Response.objects.create(**row, index=3, output_key="report", payload_name="claims-report", status="succeeded",
                        output=run.output, messages=[{"role": "user", "content": "Write a short report ..."}])
print(workflow.pk, run.pk)
"""
# The experiment's checks: a short summary that names its topic (the demo's shorter summary may pass more).
ASSERTIONS = ('[{"type": "word-count", "value": {"max": 25}, "metric": "length"}, '
              '{"type": "icontains", "value": "{{ topic }}", "metric": "on topic"}]')
CHROMIUM = "/usr/bin/chromium"


# What the endpoint page shows under "What the server accepts": one model learned, one set by a person.
CAPABILITIES = """
from llm import services
from llm.models import Endpoint
endpoint = Endpoint.objects.order_by("name").first()
services.capability_learn(
    endpoint_id=endpoint.pk, model=endpoint.default_model,
    changes={"structured_output": "json_object", "stream_options": False},
    evidence={"structured_output": "400: response_format type 'json_schema' is not supported; use 'json_object'",
              "stream_options": "Unrecognized request argument supplied: stream_options"})
services.capability_set(endpoint=endpoint, model="meta-llama/Llama-3.1-8B:q4",
                        values={"temperature": False, "token_limit_param": "max_completion_tokens"})
"""


# The Releases page's story: r1 from the first runs and labelled production; a shorter summary cut as r2,
# labelled staging and then production; r2's runs fail half the time, so production is rolled back.
RELEASES = """
from django.contrib.auth import get_user_model
from blocks.services import block_update
from releases.services import label_set, release_cut
from workflows.models import Workflow
admin = get_user_model().objects.get(username="admin")
workflow = Workflow.objects.get(name="Article")
r1 = workflow.releases.get(number=1)
label_set(workflow=workflow, name="production", release=r1, user=admin, reason="First release: outline, paragraph, summary.")
summary = workflow.steps.order_by("position").last().payload.payload_blocks.order_by("position").last().block
block_update(block=summary, user=admin, message="A shorter summary",
             data={"content": summary.content.replace("one sentence", "one short sentence of at most 15 words")})
r2, _ = release_cut(workflow=workflow, user=admin, message="Summary in one short sentence")
label_set(workflow=workflow, name="staging", release=r2, user=admin, reason="Try the shorter summary")
label_set(workflow=workflow, name="production", release=r2, user=admin, reason="Staging looked fine")
"""
# Costs (issue 19): the first run has no price (the run page shows "—", the reason and "add a price");
# the model is priced before the others, so the list, run page and statistics show amounts.
PRICE = """
import datetime
from decimal import Decimal
from django.utils import timezone
from prices.models import Price
from prices.services import price_save
price_save(Price(model="gpt-4o-mini", match="exact", effective_from=timezone.now() - datetime.timedelta(days=1),
                 input_per_million=Decimal("0.15"), output_per_million=Decimal("0.60"), currency="USD"))
"""
ROLLBACK = """
from django.contrib.auth import get_user_model
from releases.services import label_set
from workflows.models import Workflow
workflow = Workflow.objects.get(name="Article")
label_set(workflow=workflow, name="production", release=workflow.releases.get(number=1),
          user=get_user_model().objects.get(username="admin"), reason="Roll back to r1: r2 fails half its runs")
"""


# The Prices page's story, besides the demo's mock price and the dated common-models file: a pattern
# for a family of self-hosted models, and a newer price of one model from a date still to come.
PRICES = """
import datetime
from decimal import Decimal
from prices.models import Price
from prices.services import price_save
price_save(Price(), fields={"model": r"qwen2\\.5:.*", "match": "regex", "currency": "EUR",
                            "effective_from": datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC),
                            "input_per_million": Decimal("0.04"), "output_per_million": Decimal("0.12"),
                            "note": "GPU rental divided by tokens served"})
price_save(Price(), fields={"model": "gpt-4o-mini", "effective_from": datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC),
                            "input_per_million": Decimal("0.12"), "output_per_million": Decimal("0.50"),
                            "note": "announced price change"})
"""
# Datasets (issue 20): topics uploaded as a CSV, then the first run added as a case (a second version).
DATASET_CSV = (
    "topic,audience,expected,meta.source\n"
    "tidal energy,students,\"An outline of how tides are turned into power.\",seed\n"
    "solar sails,engineers,\"How light pressure moves a spacecraft.\",seed\n"
    "deep sea vents,general,,seed\n"
    "comets,children,\"What a comet is made of, and why it has a tail.\",seed\n"
)
DATASET_CASE = """
from datasets.models import Dataset
from datasets.services import dataset_case_from_run
from runs.models import Run
run = Run.objects.filter(status="succeeded").order_by("id").first()
dataset_case_from_run(run=run, dataset=Dataset.objects.get(name="Article topics"))
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def control(fake_llm: str, settings: dict[str, object]) -> None:
    """Queue faults on the fake LLM (llm/fake_server.py): a scripted answer, a rejection."""
    request = urllib.request.Request(f"{fake_llm}/_control", data=json.dumps(settings).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="orch-screenshots-"))
    llm_port, app_port = free_port(), free_port()
    env = {**os.environ, "DEBUG": "1", "SECRET_KEY": "screenshots-only", "ADMIN_PASSWORD": PASSWORD,
           "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}"}
    processes = [subprocess.Popen([sys.executable, "manage.py", "fake_llm", "--port", str(llm_port),
                                   "--inter-token-ms", "5"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)]
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "seed_demo", "--fake-llm-url", f"http://127.0.0.1:{llm_port}/v1")
        manage(env, "prices", "import", str(ROOT / "docs" / "prices" / "common-models-2026-12.json"))
        manage(env, "shell", "-c", PRICES)
        wait_for(f"http://127.0.0.1:{llm_port}/health")
        fake_llm = f"http://127.0.0.1:{llm_port}"
        # The first step of the first run thinks aloud, as reasoning models do: the run page folds it away.
        control(fake_llm, {"faults": [{"content": REASONED_OUTLINE}]})
        for topic in ("tidal energy", "solar sails"):
            manage(env, "run_workflow", "Article", "--input", f"topic={topic}")
            if topic == "tidal energy":
                manage(env, "shell", "-c", PRICE)
        manage(env, "shell", "-c", CAPABILITIES)
        manage(env, "shell", "-c", RELEASES)
        manage(env, "run_workflow", "Article", "--input", "topic=deep sea vents")
        control(fake_llm, {"faults": [{"status": 400, "message": "context length exceeded"}]})
        subprocess.run([sys.executable, "manage.py", "run_workflow", "Article", "--input", "topic=comets"],
                       cwd=ROOT, env=env, capture_output=True)  # fails on purpose: r2's failed run
        manage(env, "shell", "-c", ROLLBACK)
        (workdir / "topics.csv").write_text(DATASET_CSV)
        manage(env, "import_dataset", "Article topics", str(workdir / "topics.csv"), "--message", "first topics")
        manage(env, "shell", "-c", DATASET_CASE)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(app_port), "orchestrator.asgi:application"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{app_port}"
        wait_for(f"{base}/healthz")
        shoot(base, fake_llm, only=sys.argv[1:])
        if not sys.argv[1:] or "flow" in sys.argv[1:]:
            workflow_id, run_id = manage(env, "shell", "-c", FLOW).split()[-2:]  # the snippet prints them last
            flow_pages(base, workflow_id, run_id)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(10)


def logged_in(playwright: Any, base: str) -> tuple[Any, Any]:
    """Chromium, and a desktop-sized page logged in as the admin."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/admin/login/?next=/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")
    return browser, page


def shoot(base: str, fake_llm: str, only: list[str]) -> None:
    """Every page, or (`docs/screenshots.py datasets`) only the named groups."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = logged_in(playwright, base)
        if only:
            if "datasets" in only:
                datasets_page(page, base)
            if "experiments" in only or "reviews" in only:
                experiments_pages(page, base, fake_llm)  # the reviews need its finished experiment
            if "reviews" in only:
                review_pages(page, base)
            browser.close()
            return

        def snap(name: str, path: str, ready: str | None = None) -> None:
            page.goto(base + path)
            if ready:
                page.wait_for_selector(ready)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=True)
            print(f"wrote docs/images/{name}.png")

        snap("runs-list", "/runs/")
        first_run = page.locator("tr[data-run-id]").last.get_attribute("data-run-id")
        snap("run-detail", f"/runs/{first_run}/", "#run-status [data-status=succeeded]")
        # The first step's reasoning unfolded, at laptop and phone width.
        for name, size in (("run-detail-reasoning", {"width": 1280, "height": 900}),
                           ("run-detail-reasoning-phone", PHONE)):
            page.set_viewport_size(size)
            page.goto(f"{base}/runs/{first_run}/")
            page.locator("#step-0 details.reasoning summary").click()
            page.wait_for_load_state("networkidle")
            page.locator("#step-0").screenshot(path=str(IMAGES / f"{name}.png"))
            print(f"wrote docs/images/{name}.png")
        page.set_viewport_size({"width": 1280, "height": 900})
        snap("workflows", "/workflows/")
        workflow_path = page.locator("table a[href^='/workflows/']").first.get_attribute("href")
        snap("workflow-builder", workflow_path, "#check-status")
        workflow_id = workflow_path.strip("/").split("/")[-1]
        snap("run-form", f"/run/{workflow_id}/")
        snap("blocks", "/blocks/")
        block_path = page.locator("#block-list a").first.get_attribute("href")
        snap("block-editor", block_path, "#template-check p")
        # One save through the editor, so the block's History page has a change to show.
        page.locator("#id_description").fill("The outline step's prompt: a few short points.")
        page.get_by_role("button", name="Save").click()
        page.wait_for_selector("#editor .alert-success")
        snap("block-history", f"{block_path}history/", "#versions")
        snap("payloads", "/payloads/")
        payload_path = page.locator("table a[href^='/payloads/']").first.get_attribute("href")
        page.goto(base + payload_path)
        page.wait_for_selector("#token-count")
        for field in page.locator("#samples textarea").all():
            field.fill("tidal energy")
        page.wait_for_load_state("networkidle")
        page.get_by_role("button", name="Try it").click()
        page.wait_for_selector("#try-status[data-status=succeeded]")
        page.screenshot(path=str(IMAGES / "payload-builder.png"), full_page=True)
        print("wrote docs/images/payload-builder.png")
        snap("llm-tester", "/llm/tester/")
        tester_answer_and_checks(page, base, fake_llm)
        snap("endpoints", "/endpoints/")
        endpoint_path = page.locator("#endpoint-table td a[href^='/endpoints/']").first.get_attribute("href")
        snap("endpoint-edit", endpoint_path, "#endpoint-form")
        prices_page(page, base)
        datasets_page(page, base)
        experiments_pages(page, base, fake_llm)
        review_pages(page, base)
        # The run extras: two runs side by side, a replay form, a workflow's runs per day.
        page.goto(f"{base}/runs/")
        run_ids = sorted(int(i) for i in page.locator("tr[data-run-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.runId)"))
        snap("run-compare", f"/runs/compare/?a={run_ids[0]}&b={run_ids[1]}", "#compare-steps")
        snap("run-replay", f"/runs/{run_ids[0]}/replay/?from_step=1", "#replay-form")
        snap("run-stats", f"/runs/stats/?workflow={workflow_id}", "#chart-day-latency")
        releases_and_labels(page, base, workflow_id)
        # The grouped navigation opened on a builder page, and the runs list at phone width with its menu open.
        page.goto(base + workflow_path)
        page.get_by_role("navigation", name="Main").get_by_text("Build", exact=True).click()
        page.screenshot(path=str(IMAGES / "navigation.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 360})
        print("wrote docs/images/navigation.png")
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{base}/runs/")
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("navigation", name="Main").get_by_text("Run", exact=True).click()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(IMAGES / "runs-list-phone.png"))
        print("wrote docs/images/runs-list-phone.png")
        browser.close()


def flow_pages(base: str, workflow_id: str, run_id: str) -> None:
    """Control flow: the builder's graph of "Claims review" and its run with a map's grid, one item opened."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = logged_in(playwright, base)
        for suffix, size in (("", {"width": 1280, "height": 900}), ("-phone", PHONE)):
            page.set_viewport_size(size)
            page.goto(f"{base}/workflows/{workflow_id}/")
            page.wait_for_selector("#flow-graph")
            page.wait_for_load_state("networkidle")
            page.locator("#flow").screenshot(path=str(IMAGES / f"workflow-builder-graph{suffix}.png"))
            print(f"wrote docs/images/workflow-builder-graph{suffix}.png")
            page.goto(f"{base}/runs/{run_id}/")
            page.locator('#step-2 .item-cell[data-item="7"]').click()
            page.wait_for_selector("#step-2 .item-facts")
            page.wait_for_load_state("networkidle")
            page.locator("#steps").screenshot(path=str(IMAGES / f"run-map-grid{suffix}.png"))
            print(f"wrote docs/images/run-map-grid{suffix}.png")
        browser.close()


def releases_and_labels(page, base: str, workflow_id: str) -> None:  # type: ignore[no-untyped-def]
    """The Releases page, r2 against r1, and a run of r2 naming its release and versions: laptop and phone."""
    page.goto(f"{base}/runs/?workflow={workflow_id}")
    newest_run = page.locator("tr[data-run-id]:has([data-status=succeeded])").first.get_attribute("data-run-id")
    oldest_run = page.locator("tr[data-run-id]").last.get_attribute("data-run-id")  # a run of r1: r2 changed since
    shots = [("releases", f"/workflows/{workflow_id}/releases/", "#release-table"),
             ("release-diff", f"/workflows/{workflow_id}/releases/2/diff/", "#diff"),
             ("run-detail-release", f"/runs/{newest_run}/", "#run-release"),
             ("run-changes", f"/runs/{oldest_run}/changes/?against=current", "#diff")]
    for suffix, size in (("", {"width": 1280, "height": 900}), ("-phone", PHONE)):
        page.set_viewport_size(size)
        for name, path, ready in shots:
            page.goto(base + path)
            page.wait_for_selector(ready)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(IMAGES / f"{name}{suffix}.png"), full_page=True)
            print(f"wrote docs/images/{name}{suffix}.png")
    page.set_viewport_size({"width": 1280, "height": 900})


def prices_page(page, base: str) -> None:  # type: ignore[no-untyped-def]
    """The price book with the "Which price wins?" box answered for the mock's model: laptop and phone."""
    page.goto(f"{base}/endpoints/")
    mock = page.locator("#endpoint-table tr[data-endpoint]").first.get_attribute("data-endpoint")
    for suffix, size in (("", {"width": 1280, "height": 900}), ("-phone", PHONE)):
        page.set_viewport_size(size)
        page.goto(f"{base}/prices/?resolve-endpoint={mock}&resolve-model=gpt-4o-mini")
        page.wait_for_selector("#resolve-answer")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(IMAGES / f"prices{suffix}.png"), full_page=True)
        print(f"wrote docs/images/prices{suffix}.png")
    page.set_viewport_size({"width": 1280, "height": 900})


def datasets_page(page, base: str) -> None:  # type: ignore[no-untyped-def]
    """A dataset's rows, its upload and add-a-row forms and its versions: laptop and phone."""
    page.goto(f"{base}/datasets/")
    dataset_path = page.locator("#dataset-table a").first.get_attribute("href")
    for suffix, size in (("", {"width": 1280, "height": 900}), ("-phone", PHONE)):
        page.set_viewport_size(size)
        page.goto(base + dataset_path)
        page.wait_for_selector("#row-table")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(IMAGES / f"dataset{suffix}.png"), full_page=True)
        print(f"wrote docs/images/dataset{suffix}.png")
    page.set_viewport_size({"width": 1280, "height": 900})


def experiments_pages(page, base: str, fake_llm: str) -> None:  # type: ignore[no-untyped-def]
    """The new-experiment form, an experiment while it runs and once finished (one cell failed), the
    list, and two experiments compared: laptop and phone."""
    def shot(name: str, sizes: tuple[tuple[str, dict[str, int]], ...] = (("", {"width": 1280, "height": 900}),
                                                                        ("-phone", PHONE))) -> None:
        for suffix, size in sizes:
            page.set_viewport_size(size)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(IMAGES / f"{name}{suffix}.png"), full_page=True)
            print(f"wrote docs/images/{name}{suffix}.png")
        page.set_viewport_size({"width": 1280, "height": 900})

    def start(name: str, labels: list[str], budget: str = "") -> None:
        page.goto(f"{base}/experiments/new/")
        page.get_by_label("Name").fill(name)
        page.get_by_label("Workflow").select_option(label="Article")
        page.get_by_label(re.compile("The workflow as it stands")).wait_for()
        page.locator("#id_dataset").select_option(label="Article topics")
        page.locator("#id_map_topic").wait_for()
        for label in labels:
            page.get_by_label(re.compile(f"Label “{label}”")).check()
        page.get_by_label("Concurrency").fill("2")
        page.get_by_label("Budget").fill(budget)
        page.get_by_label("Assertions").fill(ASSERTIONS)
        page.evaluate("document.activeElement.blur()")

    start("Shorter summary?", ["production", "staging"], budget="0.50")
    shot("experiment-new")
    # Slow answers, so the page is seen running; the third call fails, so a cell shows its error.
    control(fake_llm, {"latency_ms": 700, "faults": [{}, {}, {"status": 400, "message": "context length exceeded"}]})
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    detail = page.url
    page.wait_for_function("Number(document.getElementById('experiment-bar').getAttribute('aria-valuenow')) >= 3")
    page.wait_for_selector("#matrix td.cell[data-status=failed]")  # the matrix has caught up (reloaded every 3 s)
    page.screenshot(path=str(IMAGES / "experiment-running.png"), full_page=True)
    print("wrote docs/images/experiment-running.png")
    control(fake_llm, {"latency_ms": 0})
    page.wait_for_selector("#experiment-status [data-status=finished]", timeout=120_000)
    page.goto(detail)
    page.wait_for_selector("#evaluation-shown[data-status=done]", timeout=60_000)
    shot("experiment-detail")
    # The first variant as the baseline: where the second fails a case the first passes, a regression.
    baseline = page.locator("#id_baseline option").nth(1).get_attribute("value")
    page.goto(f"{detail}?baseline={baseline}")
    shot("experiment-regressions")
    run_path = page.locator("#matrix td.cell[data-outcome=fail] a.cell-output").first.get_attribute("href")
    page.goto(base + run_path)
    page.wait_for_selector("#assertion-results")
    shot("run-assertions")
    start("Production again", ["production"])
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    page.wait_for_selector("#experiment-status [data-status=finished]", timeout=120_000)
    second = page.url.rstrip("/").rsplit("/", 1)[1]
    first = detail.rstrip("/").rsplit("/", 1)[1]
    page.goto(f"{base}/experiments/")
    shot("experiments", (("", {"width": 1280, "height": 900}),))
    page.goto(f"{base}/experiments/compare/?a={first}&b={second}")
    shot("experiment-compare", (("", {"width": 1280, "height": 900}),))


def review_pages(page, base: str) -> None:  # type: ignore[no-untyped-def]
    """The review queue after two verdicts given by keyboard, the blinded A/B queue just after a choice
    (the previous case's names revealed, the next one blinded), and what people said: laptop and phone."""
    page.goto(f"{base}/experiments/")
    detail = page.get_by_role("link", name="Shorter summary?").first.get_attribute("href")
    queue = f"{base}{detail}review/"

    def shot(name: str, sizes: tuple[tuple[str, dict[str, int]], ...] = (("", {"width": 1280, "height": 900}),
                                                                        ("-phone", PHONE))) -> None:
        for suffix, size in sizes:
            page.set_viewport_size(size)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(IMAGES / f"{name}{suffix}.png"), full_page=True)
            print(f"wrote docs/images/{name}{suffix}.png")
        page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(queue)
    page.get_by_label("Score").fill("0.9")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("g")
    page.wait_for_selector("#review-progress >> text=1 of")
    page.get_by_label("Comment").fill("Misses the second half of the question.")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("b")
    page.wait_for_selector("#review-progress >> text=2 of")
    page.get_by_label("Comment").fill("Clear, but a little long")
    shot("review-queue")
    page.get_by_label("Comment").fill("")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("?")
    page.get_by_role("dialog", name="Keyboard shortcuts").wait_for()
    shot("review-shortcuts", (("", {"width": 1280, "height": 900}),))
    page.keyboard.press("Escape")
    page.goto(f"{base}{detail}review/ab/")
    page.keyboard.press("1")
    page.wait_for_selector("#ab-reveal")
    shot("review-ab")
    page.keyboard.press("t")
    page.wait_for_selector("#ab-reveal")
    page.goto(f"{base}{detail}reviews/")
    shot("review-summary")


def tester_answer_and_checks(page, base: str, fake_llm: str) -> None:  # type: ignore[no-untyped-def]
    """The LLM Tester after an answer that reasoned and a connectivity test that learned a dialect."""
    for name, size in (("llm-tester-checks", {"width": 1280, "height": 900}), ("llm-tester-checks-phone", PHONE)):
        page.set_viewport_size(size)
        page.goto(f"{base}/llm/tester/")
        page.get_by_text("models listed by this endpoint").wait_for()
        control(fake_llm, {"faults": [{"content": "<think>Tides: the moon and the sun. One sentence, for a child."
                                                  "</think>The moon pulls the sea towards it, so the water rises and "
                                                  "falls twice a day."}]})
        page.get_by_label(re.compile(r"^Prompt")).fill("Explain tides to a child in one sentence.")
        page.get_by_role("button", name="Send").click()
        page.wait_for_selector("#answer-status[data-status=succeeded]")
        page.locator("details.reasoning summary").click()
        # A server that refuses stream_options, as some older ones do: the test learns not to send them.
        control(fake_llm, {"reject_stream_options": True})
        page.get_by_role("button", name="Run connectivity test").click()
        page.wait_for_selector("#checks-accepts")
        control(fake_llm, {"reject_stream_options": False})
        page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=True)
        print(f"wrote docs/images/{name}.png")
    page.set_viewport_size({"width": 1280, "height": 900})


if __name__ == "__main__":
    main()
