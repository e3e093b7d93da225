"""Where the time goes, from a py-spy raw (collapsed stacks) profile of a benchmark phase.

    py-spy record -r 500 --threads --idle --format raw -o prof.txt -- .venv/bin/python bench/phase.py run ...
    .venv/bin/python bench/profile_summary.py prof.txt [--top 25]

Prints the share of samples per thread, per area of the code (inclusive: a sample counts for
every area on its stack, so the shares do not add up) and the functions with the most self time.
"""
from __future__ import annotations

import argparse
import collections
import re

# Area -> pattern matched against each frame ("function (file:line)"); first frame that matches counts.
AREAS = {
    "run_start (validate, snapshot, insert; on_commit event)": r"^run_start \(",
    "  of which workflow_problems (template checks)": r"^workflow_problems \(",
    "  of which workflow_snapshot": r"^workflow_snapshot \(",
    "step_claim (read run, lease CAS, earlier outputs, endpoint)": r"^step_claim \(",
    "  of which Endpoint api_key decrypt": r"^decrypt \(",
    "step_commit (advance run + insert Response)": r"^step_commit \(",
    "transaction commit (fsync/WAL)": r"_commit \(django/db/backends/base",
    "django.db (queries, transactions)": r"django/db/",
    "sqlite3 driver": r"sqlite3/|base\.py.*execute",
    "asgiref sync_to_async / async_to_sync (thread hops)": r"asgiref/",
    "runs.engine.events (channel layer sends)": r"runs/engine/events\.py",
    "asgiref thread -> loop wake-ups (call_soon_threadsafe)": r"_write_to_self",
    "channels layer": r"channels/layers\.py",
    "payloads.services.render_messages (Jinja)": r"render_messages",
    "workflows snapshot / problems (run_start)": r"workflows/services\.py",
    "llm.client.complete": r"llm/client\.py",
    "openai SDK": r"openai/",
    "aiohttp": r"aiohttp/",
    "httpx2 / httpcore2": r"httpx2/|httpcore2/",
    "pydantic": r"pydantic",
    "asyncio event loop": r"asyncio/",
    "daphne / twisted": r"daphne/|twisted/",
    "DRF views and serializers": r"rest_framework/",
    "channels consumers": r"runs/consumers\.py|channels/generic",
}


STARTUP = re.compile(r"_find_and_load|\bmake_[a-z_]+ \(|setup_db|django/__init__\.py")
IDLE = re.compile(r"\b(select|poll|epoll|_wait|wait|acquire|get)\b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    by_thread: collections.Counter[str] = collections.Counter()
    by_area: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    total = idle = 0
    compiled = {area: re.compile(pattern) for area, pattern in AREAS.items()}
    with open(args.profile) as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = stack.split(";")
            thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
            leaf = frames[-1]
            # Start-up (imports, django.setup, building the implementation) is the cold start, not the phase.
            if STARTUP.search(stack):
                continue
            total += count
            # Waiting in select/epoll, on a lock or for thread-pool work is idle time, not work.
            if len(frames) == 1 or IDLE.search(leaf.split(" (")[0]) or leaf.startswith("_worker (concurrent/futures/thread.py:81)"):
                idle += count
                continue
            by_thread[re.sub(r"0x[0-9a-f]+", "", thread)] += count
            self_time[leaf] += count
            for area, pattern in compiled.items():
                if any(pattern.search(frame) for frame in frames):
                    by_area[area] += count
    busy = total - idle
    print(f"{total} samples after start-up, {busy} busy ({busy / total:.0%}), {idle} idle (waiting in select/locks)\n")
    print("busy samples per thread:")
    for thread, count in by_thread.most_common(8):
        print(f"  {count / busy:6.1%}  {thread}")
    print("\nbusy samples per area (inclusive; a sample counts for every area on its stack):")
    for area, count in by_area.most_common():
        print(f"  {count / busy:6.1%}  {area}")
    print(f"\ntop {args.top} functions by self time (share of busy samples):")
    for frame, count in self_time.most_common(args.top):
        print(f"  {count / busy:6.1%}  {frame[:150]}")


if __name__ == "__main__":
    main()
