"""`make bench`: what the runner adds over the raw openai SDK, every implementation in one run.

    .venv/bin/python bench/run.py            # 3 reps, everything (make bench)
    .venv/bin/python bench/run.py --quick    # 1 rep, fewer chains (make bench-quick)
    .venv/bin/python bench/run.py --impls raw,runner --phases seq0,seq50 --no-scale

Starts the project's fake OpenAI server (bench/fake_server.py) once per latency (0, 50, 100 and
1000 ms; 20 tokens a reply) pinned to cpu1, migrates a template SQLite database, then runs each
implementation x phase x rep in a fresh process (bench/phase.py) pinned to cpu0. Prints one
markdown table with each figure and its ratio to `raw`, the targets of issue 7 as met/missed,
and writes every row as JSON to bench/results/ (and, for a full run, bench/latest.json).

The method (phases, pinning, the overhead formula, per-process RSS) is ../shared/bench's
(baselines.py cmd_bench/start_server/render_table), adapted to this project's implementations.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from phase import free_port  # noqa: E402

IMPLS = ["raw", "raw-aiohttp", "runner", "api"]
# phase key -> (phase, server latency in ms, stream)
PHASES: dict[str, tuple[str, int, bool]] = {
    "seq0": ("seq", 0, False), "seq50": ("seq", 50, False), "thr": ("thr", 100, False),
    "seq0-stream": ("seq", 0, True), "seq50-stream": ("seq", 50, True), "thr-stream": ("thr", 100, True),
}
SCALE_LATENCY_MS = 1000
CHILD_TIMEOUT_SECONDS = 900


def _http(url: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def start_fake_server(latency_ms: int, tokens: int, cpu: int | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(HERE / "fake_server.py"), "--port", str(port),
                                "--latency-ms", str(latency_ms), "--tokens", str(tokens)], stdout=subprocess.DEVNULL)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1).read()
            return process, base
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"fake server (latency {latency_ms} ms) did not start on port {port}")


def run_child(args: list[str], client_cpu: int | None) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "phase.py"), "run", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if client_cpu is not None:
        os.sched_setaffinity(process.pid, {client_cpu})
    stdout, _ = process.communicate(timeout=CHILD_TIMEOUT_SECONDS)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {process.returncode}")
    return json.loads(stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    cpu_model = ""
    try:
        cpu_model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("openai", "aiohttp", "httpx2", "Django", "channels", "daphne", "Twisted"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    # The runner is being changed while we measure: say exactly what was measured.
    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line[3:].endswith(".py")]
    # BENCH_GIT_COMMIT: the commit of an export (git archive) that is not a checkout.
    return {"git_commit": os.environ.get("BENCH_GIT_COMMIT") or git("rev-parse", "--short", "HEAD").strip(),
            "git_dirty_py_files": dirty,
            "nproc": os.cpu_count(), "cpu_model": cpu_model, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_start": os.getloadavg(), "versions": versions}


# --- the report ---------------------------------------------------------------------------------
def median_of(rows: list[dict[str, Any]], impl: str, key: str, field: str) -> float | None:
    values = [r[field] for r in rows if r["impl"] == impl and r["key"] == key and r.get(field) is not None]
    return statistics.median(values) if values else None


COLUMNS = [  # title, phase key, field, format, MB?
    ("overhead/step @0ms (ms)", "seq0", "overhead_ms_per_step", "{:.2f}", False),
    ("@50ms (ms)", "seq50", "overhead_ms_per_step", "{:.2f}", False),
    ("thr wall (s), ideal 1.50", "thr", "wall_s", "{:.2f}", False),
    ("streamed @0ms (ms)", "seq0-stream", "overhead_ms_per_step", "{:.2f}", False),
    ("streamed @50ms (ms)", "seq50-stream", "overhead_ms_per_step", "{:.2f}", False),
    ("streamed thr wall (s)", "thr-stream", "wall_s", "{:.2f}", False),
    ("RSS after warm-up (MB)", "seq0", "rss_before_kb", "{:.0f}", True),
    ("peak RSS, thr (MB)", "thr", "peak_rss_kb", "{:.0f}", True),
    ("peak RSS, streamed thr (MB)", "thr-stream", "peak_rss_kb", "{:.0f}", True),
    ("cold start (ms)", "seq0", "cold_start_ms", "{:.0f}", False),
]


def render_table(rows: list[dict[str, Any]], impls: list[str], thr_ideal: float) -> str:
    columns = [(title.replace("1.50", f"{thr_ideal:.2f}"), *rest) for title, *rest in COLUMNS]
    present = {r["key"] for r in rows}
    columns = [c for c in columns if c[1] in present]
    lines = ["| impl | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for impl in impls:
        cells = []
        for _, key, field, fmt, megabytes in columns:
            value = median_of(rows, impl, key, field)
            raw = median_of(rows, "raw", key, field)
            if value is None:
                cells.append("-")
                continue
            scale = 1024 if megabytes else 1
            cell = fmt.format(value / scale)
            if impl != "raw" and raw:
                cell += f" ({value / raw:.2f}x)"
            cells.append(cell)
        lines.append(f"| {impl} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_scale(rows: list[dict[str, Any]]) -> str:
    scale = [r for r in rows if r["phase"] == "scale" and not r.get("failed")]
    if not scale:
        return ""
    lines = ["| impl | runs at once | start all runs (s) | wall (s) | ideal (s) | wall/ideal | peak RSS (MB) | errors | db locked |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in scale:
        lines.append(f"| {r['impl']} | {r['chains']} | {r.get('prepare_s', 0):.2f} | {r['wall_s']:.2f} | {r['ideal_s']:.2f} | "
                     f"{r['ratio_to_ideal']:.2f}x | {r['peak_rss_kb'] / 1024:.0f} | {r['errors'] + r['mismatches']} | "
                     f"{r.get('db_locked', 0)} |")
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, bool | None, str]]:
    """Issue 7's targets: (what, met?, the figures). None: not measured in this run."""
    found: list[tuple[str, bool | None, str]] = []

    def ratio_target(impl: str, key: str, field: str, limit: float, label: str) -> None:
        value, raw = median_of(rows, impl, key, field), median_of(rows, "raw", key, field)
        if value is None or not raw:
            found.append((label, None, "not measured"))
            return
        found.append((label, value / raw <= limit, f"{value:.2f} vs raw {raw:.2f} = {value / raw:.2f}x (target <= {limit}x)"))

    for key, where in (("seq0", "0 ms"), ("seq50", "50 ms"), ("seq0-stream", "0 ms, streamed"), ("seq50-stream", "50 ms, streamed")):
        ratio_target("runner", key, "overhead_ms_per_step", 1.5, f"runner overhead/step at {where} <= 1.5x raw")
    ratio_target("runner", "thr", "wall_s", 0.8, "runner thr wall (concurrency 100) <= 0.8x raw")
    ratio_target("runner", "thr-stream", "wall_s", 0.8, "runner streamed thr wall <= 0.8x raw")
    for key, where in (("seq0", "0 ms"), ("seq50", "50 ms"), ("seq0-stream", "0 ms, streamed"), ("seq50-stream", "50 ms, streamed")):
        ratio_target("api", key, "overhead_ms_per_step", 2.0, f"api overhead/step at {where} <= 2x raw")
    big = [r for r in rows if r["phase"] == "scale" and r["impl"] == "runner" and not r.get("failed") and r["chains"] >= 5000]
    if big:
        r = max(big, key=lambda r: r["wall_s"])
        errors = r["errors"] + r["mismatches"] + r.get("db_locked", 0)
        found.append((f"runner: {r['chains']} concurrent runs finish with no error", errors == 0, f"{errors} errors"))
        found.append((f"runner: {r['chains']} concurrent runs within 1.3x ideal", r["ratio_to_ideal"] <= 1.3,
                      f"{r['wall_s']:.2f} s vs ideal {r['ideal_s']:.2f} s = {r['ratio_to_ideal']:.2f}x"))
        found.append((f"runner: {r['chains']} concurrent runs under 1 GiB peak RSS", r["peak_rss_kb"] < 1024 * 1024,
                      f"{r['peak_rss_kb'] / 1024:.0f} MB"))
    else:
        found.append(("runner: 5,000 concurrent runs (no error, <= 1.3x ideal, < 1 GiB)", None, "not measured"))
    throughput = [r for r in rows if r["phase"] == "thr" and r["impl"] in ("runner", "api")]
    if throughput:
        locked = sum(r.get("db_locked", 0) for r in throughput)
        found.append(("SQLite WAL: zero 'database is locked' in the throughput phases (runner, api)", locked == 0,
                      f"{locked} in {len(throughput)} runs"))
    return found


def render_report(result: dict[str, Any]) -> str:
    meta, rows = result["meta"], result["rows"]
    impls = [i for i in meta["impls"] if any(r["impl"] == i for r in rows)]
    mismatches = sum(r.get("mismatches", 0) for r in rows)
    errors = sum(r.get("errors", 0) for r in rows)
    parts = [render_table(rows, impls, meta["thr_chains"] / meta["concurrency"] * 0.3), ""]
    notes = (f"medians of {meta['reps']} reps; {meta['seq_chains']} sequential chains after 5 warm-up, "
             f"{meta['thr_chains']} chains at concurrency {meta['concurrency']} (100 ms); tokens/reply={meta['tokens']}; "
             f"pinned (fake server cpu1, client and daphne cpu0)={meta['pinned']}; output mismatches={mismatches}; "
             f"chain errors={errors}; {meta['machine']['nproc']} x {meta['machine']['cpu_model']}, Python "
             f"{meta['machine']['python']}; load average {meta['machine']['loadavg_start'][0]:.2f} at start, "
             f"{meta['loadavg_end'][0]:.2f} at end")
    parts.append(notes)
    thr = {i: median_of(rows, i, "thr", "srv_inflight_max") for i in impls}
    conns = {i: median_of(rows, i, "thr", "srv_connections") for i in impls}
    parts.append(f"thr phase, server side: peak in-flight requests {thr}; distinct TCP connections {conns}")
    scale = render_scale(rows)
    if scale:
        parts += ["", f"Scale: N runs at once, server latency {SCALE_LATENCY_MS} ms (ideal {3 * SCALE_LATENCY_MS / 1000:.0f} s), "
                  "one rep", "", scale]
    for r in rows:
        if r.get("failed"):
            parts.append(f"FAILED: {r['impl']} {r.get('key')} rep {r.get('rep')}: {r['failed']}")
    parts += ["", "Targets (issue 7):", ""]
    for label, met, figures in targets(rows):
        mark = "not measured" if met is None else ("MET" if met else "MISSED")
        parts.append(f"- [{mark}] {label}: {figures}")
    return "\n".join(parts)


# --- the driver ---------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 rep, 20 sequential / 200 thr chains, scale 1000 only")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--phases", default=",".join(PHASES), help="any of " + ",".join(PHASES))
    parser.add_argument("--seq-chains", type=int)
    parser.add_argument("--thr-chains", type=int)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--scale", help="runs at once in the scale phase, e.g. 1000,5000 (default; --quick: 1000)")
    parser.add_argument("--scale-impls", default="runner,raw-aiohttp",
                        help="raw-aiohttp is a reference: the same transport and fake server, nothing persisted")
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--no-pin", action="store_true", help="don't pin the fake servers to cpu1 and clients to cpu0")
    parser.add_argument("--out", help="JSON file (default bench/results/<time>.json; a full run also writes bench/latest.json)")
    parser.add_argument("--report", metavar="JSON", help="print the report of an earlier results file and exit")
    a = parser.parse_args()
    if a.report:
        print(render_report(json.loads(Path(a.report).read_text())))
        return 0
    reps = a.reps or (1 if a.quick else 3)
    seq_chains = a.seq_chains or (20 if a.quick else 50)
    thr_chains = a.thr_chains or (200 if a.quick else 500)
    scale_sizes = [] if a.no_scale else [int(n) for n in (a.scale or ("1000" if a.quick else "1000,5000")).split(",")]
    impls = a.impls.split(",")
    phase_keys = a.phases.split(",")
    unknown = sorted(set(impls) - set(IMPLS)) + sorted(set(phase_keys) - set(PHASES))
    if unknown:
        parser.error(f"unknown implementation or phase: {', '.join(unknown)}")
    # SIGTERM ends the run through the `finally` below, which stops the fake servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pin = not a.no_pin and len(os.sched_getaffinity(0)) >= 2
    server_cpu, client_cpu = (1, 0) if pin else (None, None)

    meta: dict[str, Any] = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "reps": reps,
                            "impls": impls, "phases": phase_keys, "seq_chains": seq_chains, "thr_chains": thr_chains,
                            "concurrency": a.concurrency, "tokens": a.tokens, "pinned": pin, "scale": scale_sizes,
                            "machine": machine()}
    latencies = sorted({PHASES[k][1] for k in phase_keys} | ({SCALE_LATENCY_MS} if scale_sizes else set()))
    servers: dict[int, tuple[subprocess.Popen[bytes], str]] = {}
    workdir = tempfile.mkdtemp(prefix="orch-bench-template-")
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for latency in latencies:
            servers[latency] = start_fake_server(latency, a.tokens, server_cpu)
        template = os.path.join(workdir, "template.sqlite3")
        subprocess.run([sys.executable, str(HERE / "phase.py"), "setup-db", "--db", template,
                        *[f"--server={lat}={base}/v1" for lat, (_, base) in servers.items()]], check=True, cwd=ROOT)

        def one(impl: str, key: str, phase: str, latency: int, stream: bool, chains: int, rep: int) -> None:
            base = servers[latency][1]
            _http(f"{base}/_reset", "POST")
            args = ["--impl", impl, "--phase", phase, "--base-url", f"{base}/v1", "--latency-ms", str(latency),
                    "--tokens", str(a.tokens), "--chains", str(chains), "--concurrency", str(a.concurrency),
                    "--db", template]
            if stream:
                args.append("--stream")
            if client_cpu is not None:
                args += ["--server-cpu", str(client_cpu)]
            try:
                row = run_child(args, client_cpu)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
                # Keep the other rows: the run still fails at the end.
                print(f"FAILED {impl} {key}: {exc}", file=sys.stderr, flush=True)
                row = {"impl": impl, "phase": phase, "latency_ms": latency, "stream": stream, "failed": str(exc),
                       "errors": 1, "mismatches": 0}
            server = _http(f"{base}/_stats")
            row.update(rep=rep, key=key, srv_requests=server["chat_requests"], srv_inflight_max=server["inflight_max"],
                       srv_connections=server["connections"], srv_errors=server["errors"])
            rows.append(row)
            brief = {k: row.get(k) for k in ("overhead_ms_per_step", "wall_s", "ratio_to_ideal", "peak_rss_kb",
                                             "mismatches", "errors", "db_locked") if row.get(k) is not None}
            print(f"[{time.perf_counter() - started:6.0f}s] rep {rep} {impl:11} {key:13} {json.dumps(brief)}",
                  file=sys.stderr, flush=True)

        for rep in range(reps):
            for impl in impls:
                for key in phase_keys:
                    phase, latency, stream = PHASES[key]
                    one(impl, key, phase, latency, stream, seq_chains if phase == "seq" else thr_chains, rep)
        for size in scale_sizes:
            for impl in a.scale_impls.split(","):
                one(impl, f"scale{size}", "scale", SCALE_LATENCY_MS, False, size, 0)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    meta["loadavg_end"] = os.getloadavg()
    meta["duration_s"] = round(time.perf_counter() - started)
    result = {"meta": meta, "rows": rows}
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    out = Path(a.out) if a.out else results_dir / f"bench-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=1))
    full_run = not any(r.get("failed") for r in rows) and not (a.quick or a.out or a.reps or a.seq_chains or a.thr_chains or a.scale or a.no_scale) and \
        a.impls == ",".join(IMPLS) and a.phases == ",".join(PHASES)
    if full_run:
        shutil.copyfile(out, HERE / "latest.json")
    print(render_report(result))
    print(f"\nrows: {out}" + (" and bench/latest.json" if full_run else "") + f"; {meta['duration_s']} s")
    failed = sum(r.get("mismatches", 0) + r.get("errors", 0) for r in rows)
    if failed:
        print(f"FAILED: {failed} chains with a wrong output or an error", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
