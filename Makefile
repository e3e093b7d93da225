# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
FAKE_LLM_PORT ?= 8001

.PHONY: run test lint migrate install install-dev bench bench-quick soak soak-prune screenshots serve fake-llm clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# A development .env (DEBUG on, a random SECRET_KEY) unless one exists.
.env:
	@printf 'DEBUG=1\nSECRET_KEY=%s\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > .env
	@echo "wrote .env for development (DEBUG=1)"

migrate: install .env
	$(PY) manage.py migrate --noinput

# Migrate, seed the demo, start the mock LLM on $(FAKE_LLM_PORT) and serve on $(PORT). seed_demo's
# output ends with the log-in block (URL, user, password or how to reset it); it is printed once
# daphne listens, so it comes after the servers' start-up logs instead of scrolling away above them.
run: migrate
	@login="$$($(PY) manage.py seed_demo --fake-llm-url http://127.0.0.1:$(FAKE_LLM_PORT)/v1 --site-url http://$(HOST):$(PORT)/)" || exit 1; \
	$(PY) manage.py fake_llm --port $(FAKE_LLM_PORT) --inter-token-ms 30 --tokens 60 & fake=$$!; \
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) orchestrator.asgi:application & web=$$!; \
	trap 'kill $$fake $$web 2>/dev/null' EXIT INT TERM; \
	until $(PY) -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)' $(HOST) $(PORT) 2>/dev/null; do \
		kill -0 $$web 2>/dev/null || exit 1; sleep 0.3; \
	done; \
	printf '\n%s\n\n' "$$login"; \
	wait $$web

# The suite runs in TEST_WORKERS pytest-xdist processes (each with its own test database, fake LLM
# and, in the distributed phase, its own PostgreSQL and Redis); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadgroup

test: install-dev
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(XDIST)
	$(MAKE) --no-print-directory test-distributed

# ruff with the complexity check (C901 at 10, pyproject.toml); `make test` runs it first, so CI does too.
lint: install-dev
	$(VENV)/bin/ruff check .

# What the runner adds over the raw openai SDK: 3 reps, 11-13 min on 2 cores (docs/performance.md),
# then the distributed phase (bench-distributed), then experiments (bench-experiments and
# bench-experiments-distributed), then flows (bench-flow). All run; it fails if any did.
bench: install-dev
	status=0; $(PY) bench/run.py || status=1; $(PY) bench/distributed.py || status=1; \
	$(PY) bench/experiments.py || status=1; $(PY) bench/experiments_distributed.py || status=1; \
	$(PY) bench/flow.py || status=1; exit $$status

# Issue 20, embedded: 10,000 one-step cells in a real daphne against raw-aiohttp's same 10,000 calls,
# the CSV export of the results and a 100,000-row upload (about 3 min; docs/performance.md "Experiments").
.PHONY: bench-experiments bench-experiments-distributed
bench-experiments: install-dev
	$(PY) bench/experiments.py

# Issue 20, distributed: the same 10,000 cells on 2 Procrastinate workers, one killed with SIGKILL at 40 %.
bench-experiments-distributed: install-dev
	$(PY) bench/experiments_distributed.py

# Issue 22: a 4-wide fan-out and a 100-item map at 100 ms against their ideal wall time (about 30 s;
# docs/performance.md "Flows"). Target: at most 1.2 x the ideal.
.PHONY: bench-flow
bench-flow: install-dev
	$(PY) bench/flow.py

# Issue 21: re-scoring 100,000 stored outputs with five assertions (under 30 s on one core; about 2 min
# with seeding). docs/performance.md "Evaluations".
.PHONY: bench-evaluations
bench-evaluations: install-dev
	$(PY) bench/evaluations.py

# Distributed mode: real PostgreSQL, Redis and `procrastinate worker` processes; CPU per step,
# steps/s with 1 and 2 workers, kill -9 recovery (about 2-3 min; docs/performance.md "Distributed mode").
.PHONY: bench-distributed
bench-distributed: install-dev
	$(PY) bench/distributed.py

# Issue 18: every list, filter, search and sort at 1,000,000 runs (VOLUME_RUNS=50000 while developing),
# seeded with bulk_create into a temp SQLite file (about 15 min), or into DATABASE_URL=postgres://...
# Not part of `make test`; docs/performance.md "make bench-volume".
.PHONY: bench-volume
bench-volume: install-dev
	$(PY) bench/volume.py

# One rep, fewer chains: for development.
bench-quick: install-dev
	$(PY) bench/run.py --quick

# Distributed mode: the run tests again on PostgreSQL with Procrastinate worker processes and
# Redis; the servers are started (and installed with apt-get when missing) by tests/scaleout/servers.py.
DISTRIBUTED_TESTS_PATHS ?= tests/runs/test_runner.py tests/runs/test_flow.py tests/runs/test_cli.py tests/runs/test_ledger.py tests/runs/test_dbthread.py tests/versions/test_concurrency.py tests/releases/test_concurrency.py tests/runs/test_search.py tests/runs/test_rollups.py tests/runs/test_reprice.py tests/reliability/test_reprice_kill.py tests/runs/test_retention.py tests/runs/test_prune_beside_runs.py tests/scaleout
.PHONY: test-distributed soak-distributed
test-distributed: install-dev
	DISTRIBUTED_TESTS=1 $(PY) -m pytest $(XDIST) $(DISTRIBUTED_TESTS_PATHS)

# Pruning 100,000 old runs while runs execute (issue 18): no "database is locked", no step lost, space returned.
soak-prune: install-dev
	PRUNE_SOAK_RUNS=100000 $(PY) -m pytest -s tests/runs/test_prune_beside_runs.py

# The long form of the crash test: 20 kill -9 at random moments (about 3 min).
soak-distributed: install-dev
	DISTRIBUTED_TESTS=1 SCALEOUT_KILLS=20 $(PY) -m pytest -s tests/scaleout/test_workers.py -k killed

# The long fault and load tests (docs/reliability.md): 1,000 runs under 20% LLM errors, 20 SIGKILLs,
# schemathesis and hypothesis with many more examples. `make test` runs the same tests, shortened.
soak: install-dev
	SOAK=1 $(PY) -m pytest tests/reliability -q --timeout 3600

clean:
	rm -rf $(VENV) staticfiles .pytest_cache

# A PNG of each page in docs/images/ (headless Debian chromium against a seeded, throw-away server).
screenshots: install-dev
	$(PY) docs/screenshots.py
