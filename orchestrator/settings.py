"""Settings for LLM Orchestrator, read from the environment (django-environ).

Defaults are for development: SQLite, the in-memory channel layer and runs executed inside the
server process. PostgreSQL, Redis and Procrastinate workers are switched on by variables only;
docs/configuration.md lists them all.
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Django -------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
# Development (DEBUG) gets a fixed throwaway key; anything else must set SECRET_KEY.
SECRET_KEY = env("SECRET_KEY", default="dev-insecure-key-only-for-debug" if DEBUG else None)
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("Set SECRET_KEY (or DEBUG=1 for development).")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # third party
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "adminsortable2",
    # ours
    "llm",
    "blocks",
    "payloads",
    "prices",
    "workflows",
    "releases",
    "runs",
    "datasets",
    "evaluations",
    "experiments",
    "observability",  # traces (OpenTelemetry) and /metrics (Prometheus): watches the others, nothing imports it
    "fakellm",  # manage.py fake_llm: the mock server of the demo and the tests
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
ASGI_APPLICATION = "orchestrator.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Many runs write at once: WAL lets readers run beside the writer, IMMEDIATE takes the write
    # lock at BEGIN (no deadlocking lock upgrades), and the timeout waits instead of failing.
    DATABASES["default"]["ENGINE"] = "core.sqlite_backend"
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    if env("TEST_DATABASE_NAME", default=""):
        DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Request bodies above this are refused with 400 before any view sees them.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
# A dataset upload (a file, so the limit above does not apply) is refused above this many bytes;
# files over FILE_UPLOAD_MAX_MEMORY_SIZE (Django's 2.5 MB) are spooled to a temporary file, never held whole.
DATASET_UPLOAD_MAX_BYTES = env.int("DATASET_UPLOAD_MAX_BYTES", default=1024 * 1024 * 1024)
# Refused with 413 by its Content-Length before the body is read (core/body_limit.py, under ASGI); the
# slack is the multipart envelope around the file.
BODY_LIMITS = [(r"^/(api/)?datasets/\d+/(import|upload)/$", DATASET_UPLOAD_MAX_BYTES + 64 * 1024),
               # A promptfooconfig is at most 1 MiB (experiments/promptfoo_yaml.py); JSON escaping can double it.
               (r"^/api/promptfoo/import/$", 2 * 1024 * 1024 + 64 * 1024)]

# --- Channels -----------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
# A full channel drops messages silently, so the capacity is sized for bursts of many runs.
CHANNEL_CAPACITY = env.int("CHANNEL_CAPACITY", default=5000)
# An open WebSocket re-checks its user (session, active, view_run) this often (docs/events.md).
WS_RECHECK_SECONDS = env.float("WS_RECHECK_SECONDS", default=5.0)
# Every frame a socket sends stays under this (daphne drops a connection on a frame over 1 MiB) ...
WS_MAX_FRAME_BYTES = env.int("WS_MAX_FRAME_BYTES", default=256 * 1024)
# ... and a text field longer than this is sent cut, with a reference to the full value in the API.
WS_FIELD_MAX_CHARS = env.int("WS_FIELD_MAX_CHARS", default=32 * 1024)


def _redis_host(url: str) -> dict[str, object]:
    """After a Redis restart, pooled connections are dead: retry a command on a fresh one."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return {"address": url, "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 5),
            "retry_on_error": [RedisConnectionError, RedisTimeoutError], "health_check_interval": 15}


if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_redis_host(REDIS_URL)], "capacity": CHANNEL_CAPACITY, "expiry": 60},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY, "expiry": 60},
        }
    }

# --- REST framework -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "core.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.ModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "core.browsable.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LLM Orchestrator API",
    "DESCRIPTION": "Blocks, payloads, workflows, LLM endpoints and runs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Run and Response both have a `status` field with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "runs.models.RunStatus",
        "ResponseStatusEnum": "runs.models.ResponseStatus",
        "CostSourceEnum": "prices.book.COST_SOURCES",
        "EvaluationStatusEnum": "evaluations.models.EvaluationStatus",
        "ScoreOutcomeEnum": "evaluations.models.ScoreOutcome",
        "ExperimentStatusEnum": "experiments.models.ExperimentStatus",
    },
}

# --- LLM orchestrator ---------------------------------------------------------------------------
# "embedded": runs execute in the server process; "procrastinate": on worker machines.
RUNS_BACKEND = env("RUNS_BACKEND", default="embedded")
RUNS_MAX_CONCURRENCY = env.int("RUNS_MAX_CONCURRENCY", default=10000)
# The most items one `for_each` step may map over; a longer list fails the step, naming it (issue 22).
RUNS_MAP_MAX_ITEMS = env.int("RUNS_MAP_MAX_ITEMS", default=1000)
# The highest concurrency an experiment may ask for (each running cell is a run in flight).
EXPERIMENTS_MAX_CONCURRENCY = env.int("EXPERIMENTS_MAX_CONCURRENCY", default=1000)
RUNS_LEASE_SECONDS = env.float("RUNS_LEASE_SECONDS", default=30.0)
# Servers and workers freeze their start-up objects out of the garbage collector's way and collect
# young objects every this many net allocations (Python's default: 700); 0 leaves Python's defaults.
# core/collector.py says why.
GC_GEN0_THRESHOLD = env.int("GC_GEN0_THRESHOLD", default=20000)
# Retention: finished runs older than this many days are pruned every hour (0: never; see
# `manage.py prune_runs`). Runs of a release a label points at are kept unless RUNS_PRUNE_LABELLED.
RUNS_PRUNE_OLDER_THAN_DAYS = env.int("RUNS_PRUNE_OLDER_THAN_DAYS", default=0)
RUNS_PRUNE_LABELLED = env.bool("RUNS_PRUNE_LABELLED", default=False)

# Cost (prices/). A cost a server reports in its usage (e.g. OpenRouter's usage.cost) is in this currency.
COST_REPORTED_CURRENCY = env.str("COST_REPORTED_CURRENCY", default="USD")
# A budgeted run's step with no max_tokens is assumed to answer with at most this many (runs.engine.budget).
COST_BUDGET_DEFAULT_MAX_TOKENS = env.int("COST_BUDGET_DEFAULT_MAX_TOKENS", default=4096)
# A reprice job's holder renews its lease at every batch; a killed holder's job is resumed after this.
REPRICE_LEASE_SECONDS = env.float("REPRICE_LEASE_SECONDS", default=30.0)

# Distributed mode: one Procrastinate job runs a whole run ("run"), or one step ("step").
# Both pass the crash tests; "run" costs less CPU per step (docs/performance.md).
RUNS_TASK_GRANULARITY = env.str("RUNS_TASK_GRANULARITY", default="run")
# How often a running step checks the cancel flag and its lease. With workers on other machines a
# cancel must reach a step within 2 s; in embedded mode a cancel also arrives in-process at once.
RUNS_HEARTBEAT_SECONDS = env.float("RUNS_HEARTBEAT_SECONDS", default=1.0 if RUNS_BACKEND == "procrastinate" else 2.0)
# Key for API keys at rest; defaults to one derived from SECRET_KEY.
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")
# Template sandbox (blocks/templating.py, docs/security.md): the budget of one render (a step, a
# preview), and the worker processes that render templates which are more than text and variables.
TEMPLATE_MAX_CHARS = env.int("TEMPLATE_MAX_CHARS", default=1_000_000)
TEMPLATE_MAX_TOTAL_CHARS = env.int("TEMPLATE_MAX_TOTAL_CHARS", default=20_000_000)
TEMPLATE_MAX_SECONDS = env.float("TEMPLATE_MAX_SECONDS", default=2.0)
TEMPLATE_MAX_MEMORY_MB = env.int("TEMPLATE_MAX_MEMORY_MB", default=512)
TEMPLATE_WORKERS = env.int("TEMPLATE_WORKERS", default=2)

# --- Distributed mode: Procrastinate workers on PostgreSQL (RUNS_BACKEND=procrastinate) -----
# Nothing here is active by default; docs/deploy.md describes every variable.
if RUNS_BACKEND == "procrastinate":
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise environ.ImproperlyConfigured("RUNS_BACKEND=procrastinate needs DATABASE_URL to point at PostgreSQL.")
    # Procrastinate's Django app goes before ours; workers import the engine's tasks from here.
    INSTALLED_APPS.insert(INSTALLED_APPS.index("llm"), "procrastinate.contrib.django")
    PROCRASTINATE_IMPORT_PATHS = ["runs.engine.tasks", "experiments.tasks", "evaluations.tasks"]
    # Workers beat every second and are stalled after 5 s: a kill -9ed worker's runs resume in
    # about 5-7 s (runs.engine.tasks.recover_stalled_work) instead of ~25 s with the defaults.
    PROCRASTINATE_WORKER_DEFAULTS = {
        "update_heartbeat_interval": env.float("RUNS_WORKER_HEARTBEAT_SECONDS", default=1.0),
        "stalled_worker_timeout": env.float("RUNS_WORKER_STALLED_SECONDS", default=5.0),
        # SIGTERM: steps still running after this are aborted and their runs resumed elsewhere.
        "shutdown_graceful_timeout": env.float("RUNS_WORKER_GRACE_SECONDS", default=20.0),
    }
    RUNS_WORKER_STALLED_SECONDS = PROCRASTINATE_WORKER_DEFAULTS["stalled_worker_timeout"]
    if REDIS_URL == "":
        import warnings

        warnings.warn("RUNS_BACKEND=procrastinate without REDIS_URL: live events from workers "
                      "reach no browser (the in-memory channel layer is per process).", stacklevel=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}, "httpx": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

# --- Security -----------------------------------------------------------------------------------
# Production hardening (docs/security.md). Applies when DEBUG is off; each setting can be
# overridden from the environment, e.g. SECURE_SSL_REDIRECT=0 behind a proxy that redirects itself.
_production = not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_production)
# The load balancer's health check speaks plain HTTP.
# Prometheus scrapes in plain HTTP too (a bearer token or a network guards /metrics).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_production)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_production)
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if _production else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_production)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_production)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# TLS ends at the proxy: trust its X-Forwarded-Proto. Empty turns it off (only safe when the proxy
# overwrites the header the client sent).
_proxy_ssl_header = env("SECURE_PROXY_SSL_HEADER", default="HTTP_X_FORWARDED_PROTO" if _production else "")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None

# Throttles (DRF): run creation per user (ScopedRateThrottle, scope "runs") and failed log-ins per
# client address (core.login_throttle, rate "login"). An empty rate turns a throttle off.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "runs": env("RUNS_THROTTLE_RATE", default="600/minute") or None,
    "login": env("LOGIN_THROTTLE_RATE", default="10/minute") or None,
}
# How many proxies in front of the app append to X-Forwarded-For; unset, the header is ignored and
# throttles see REMOTE_ADDR (core/client_address.py).
REST_FRAMEWORK["NUM_PROXIES"] = env.int("NUM_PROXIES", default=None)
# Last, and sync-only on purpose: under ASGI every middleware above it then runs in the request's
# one thread. (Django's own middleware, run async, costs a thread hop per hook and per request.)
MIDDLEWARE.append("core.login_throttle.LoginThrottleMiddleware")

# What a server was found not to accept (llm.Capability) is tried again after this long, so a
# server upgraded since is used at its best; the connectivity test re-learns at once.
LLM_CAPABILITY_RELEARN_SECONDS = env.float("LLM_CAPABILITY_RELEARN_SECONDS", default=7 * 24 * 3600.0)
# Endpoints' requests/tokens per minute and 429 pauses hold across processes through the database
# (llm/ratelimit.py); one process alone keeps them in memory.
LLM_RATE_LIMIT_SHARED = env.bool("LLM_RATE_LIMIT_SHARED", default=RUNS_BACKEND == "procrastinate")
# How long a run started with "use the cache" keeps the answers of payloads that set no time to live
# of their own (docs/cache.md).
LLM_CACHE_TTL_SECONDS = env.int("LLM_CACHE_TTL_SECONDS", default=24 * 3600)

# Where endpoint URLs may point (llm/egress.py). Hosts here skip every check; denied hosts are
# refused even when they resolve to a public address. Loopback is allowed only with DEBUG on.
LLM_ENDPOINT_ALLOWED_HOSTS = env.list("LLM_ENDPOINT_ALLOWED_HOSTS", default=[])
LLM_ENDPOINT_DENIED_HOSTS = env.list("LLM_ENDPOINT_DENIED_HOSTS", default=[
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "metadata.google.internal", "metadata",
])
LLM_ENDPOINT_ALLOW_LOOPBACK = env.bool("LLM_ENDPOINT_ALLOW_LOOPBACK", default=DEBUG)
# Private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, ...) only with DEBUG on, or
# the networks (CIDR) and host names listed here, e.g. "10.20.0.0/16,llm.internal.example".
LLM_ENDPOINT_ALLOW_PRIVATE = env.bool("LLM_ENDPOINT_ALLOW_PRIVATE", default=DEBUG)
LLM_ENDPOINT_ALLOWED_NETWORKS = env.list("LLM_ENDPOINT_ALLOWED_NETWORKS", default=[])
# Ports of databases, caches and admin daemons: never an LLM API.
LLM_ENDPOINT_DENIED_PORTS = env.list("LLM_ENDPOINT_DENIED_PORTS", cast=int, default=[
    22, 23, 25, 2375, 2376, 2379, 3306, 5432, 6379, 9200, 10250, 11211, 27017,
])
# A body nested thousands deep is a clear 400 (the stock parser lets RecursionError become a 500).
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = [
    "core.parsers.NestingSafeJSONParser",
    "rest_framework.parsers.FormParser",
    "rest_framework.parsers.MultiPartParser",
]

# --- Observability (observability/, docs/observability.md) ------------------------------------------
# Traces: one per run, exported over OTLP/HTTP when an endpoint is set (the standard OTEL_* variables;
# OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES and OTEL_BSP_* are read by the SDK itself).
OTEL_TRACES_ENDPOINT = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="") or (
    f"{env('OTEL_EXPORTER_OTLP_ENDPOINT').rstrip('/')}/v1/traces" if env("OTEL_EXPORTER_OTLP_ENDPOINT", default="") else "")
if OTEL_TRACES_ENDPOINT:
    from urllib.parse import urlsplit

    _otlp = urlsplit(OTEL_TRACES_ENDPOINT)
    if _otlp.scheme not in ("http", "https") or not _otlp.hostname:
        raise environ.ImproperlyConfigured(
            f"OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) must be an http(s) URL, not {OTEL_TRACES_ENDPOINT!r}.")
OTEL_SERVICE_NAME = env("OTEL_SERVICE_NAME", default="llm-orchestrator")
# An export gives up after this many seconds (the Python SDK reads the variable in seconds): a collector
# that is down costs the export thread this long per batch, never a run.
OTEL_EXPORT_TIMEOUT_SECONDS = env.float("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                                        default=env.float("OTEL_EXPORTER_OTLP_TIMEOUT", default=5.0))
# Prompts and answers go into spans only when asked (the GenAI conventions' opt-in).
OTEL_CAPTURE_MESSAGE_CONTENT = env.bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", default=False)
# The run page links to its trace, e.g. "http://jaeger:16686/trace/{trace_id}"; empty: no link.
OTEL_TRACE_URL_TEMPLATE = env("OTEL_TRACE_URL_TEMPLATE", default="")
# Metrics: /metrics in Prometheus' format, for a bearer token or from the networks listed (CIDR).
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
# With neither, /metrics refuses every scrape; outside DEBUG that is a mistake caught at start-up.
if METRICS_ENABLED and not DEBUG and not (METRICS_TOKEN or METRICS_ALLOWED_NETWORKS):
    raise environ.ImproperlyConfigured(
        "/metrics needs METRICS_TOKEN (a bearer token) or METRICS_ALLOWED_NETWORKS (CIDRs) when DEBUG is off; "
        "METRICS_ENABLED=0 turns it off.")
if METRICS_ENABLED:
    import ipaddress

    for _network in METRICS_ALLOWED_NETWORKS:
        try:
            ipaddress.ip_network(_network, strict=False)
        except ValueError:
            raise environ.ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network (CIDR).") from None
# Distributed mode: each `manage.py procrastinate worker` serves its own metrics on this port (0: none).
METRICS_WORKER_PORT = env.int("METRICS_WORKER_PORT", default=0)
METRICS_WORKER_ADDRESS = env("METRICS_WORKER_ADDRESS", default="0.0.0.0")
