"""Settings from the environment (12-factor). With nothing set, the embedded default runs:
SQLite, local-memory cache, in-memory channel layer, in-process transports."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> str | None:
    """A DRF rate such as "60/minute", or None for "off"; anything else stops the start."""
    value = os.environ.get(name, default).strip().lower()
    if value in {"", "off", "none"}:
        return None
    if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like '60/minute' or 'off'")
    return value


_secret_key = os.environ.get("SECRET_KEY", "")
# Without a real secret key this is a development machine: DEBUG defaults on.
DEBUG = env_bool("DEBUG", default=not _secret_key)
SECRET_KEY = _secret_key or "django-insecure-embedded-default-do-not-use-in-production"
if not DEBUG and (
    len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
    or SECRET_KEY.startswith("django-insecure")
    or "change-me" in SECRET_KEY
):
    # Sessions, password resets and signed values are only as safe as this key.
    raise ImproperlyConfigured(
        "SECRET_KEY must be a random value of at least 50 characters when DEBUG is off "
        "(not a placeholder), for example from: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    # The composition root, an app for its deployment-wide commands (verify_consistency).
    "config",
    "platform_core",
    "orders",
    "inventory",
    "payments",
    "shipping",
    "projections",
]

# Under ASGI, Django runs a chain of middleware in one worker thread only if the last one
# is synchronous-only: a sync-only middleware above async-capable ones splits the chain,
# and each of Django's own middlewares below it then hands every hook to a thread of its
# own (bench/fulfillment.py's bare control endpoint: about 150 requests/s so, 220 not).
# Hence RequestSizeLimitMiddleware, sync-only, last: it still answers before anything
# reads the body (views and process_view hooks run below it). CorrelationIdMiddleware
# comes first, so every response and log line, a redirect or a 413 included, has the id.
MIDDLEWARE = [
    "platform_core.web.http.CorrelationIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "platform_core.web.http.RequestSizeLimitMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        # Under ASGI (Daphne) every request runs in a thread of its own, so a persistent
        # connection is never reused and they pile up until PostgreSQL refuses clients:
        # close at the end of each request, or share a pool (DATABASE_POOL).
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
        # A kept connection is checked (one query) before each request or task reuses it.
        # The Celery worker can go without (CONN_HEALTH_CHECKS=0): a command that fails on a
        # connection that had died is run again at once on a new one (CommandTask.execute).
        conn_health_checks=env_bool("CONN_HEALTH_CHECKS", True),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql") and env_bool("DATABASE_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections instead
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": int(os.environ.get("DATABASE_POOL_MIN", "2")),
        "max_size": int(os.environ.get("DATABASE_POOL_MAX", "16")),
    }
if not env_bool("DATABASE_PREPARED_STATEMENTS", True):
    # Behind a pooler that cannot carry prepared statements (PgBouncer in transaction mode
    # before 1.21): the hot-path statements (`platform_core.storage.pg`) then stop preparing too.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # Writers take the lock at BEGIN, so concurrent writers queue instead of deadlocking.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run on a file like the embedded default, not on SQLite's shared-cache memory
    # database, whose table locks fail at once between threads instead of waiting.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"fulfillment-test-{os.getpid()}.sqlite3")
    }
    # The fake payment gateway is another system: its log commits on its own while a
    # command's transaction holds the main file's one write lock, so it gets a file of
    # its own (config.routers.GatewayLogRouter; `manage.py migrate --database gateway`).
    GATEWAY_DATABASE = "gateway"
    DATABASES[GATEWAY_DATABASE] = {
        **DATABASES["default"],
        "NAME": str(VAR_DIR / "gateway.sqlite3"),
        "TEST": {
            "NAME": str(Path(tempfile.gettempdir()) / f"fulfillment-gw-{os.getpid()}.sqlite3")
        },
    }
    DATABASE_ROUTERS = ["config.routers.GatewayLogRouter"]
else:
    GATEWAY_DATABASE = "default"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "fulfillment"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Live updates over websockets (docs/live-updates.md). The in-memory layer drops messages
# beyond a channel's capacity, so it holds as many as a connection may have pending.
WEBSOCKET_BUFFER_LIMIT = int(os.environ.get("WEBSOCKET_BUFFER_LIMIT", "1000"))
_channel_capacity = {"capacity": WEBSOCKET_BUFFER_LIMIT}
if REDIS_URL:
    # Redis pub/sub: a group message is one PUBLISH. The list-based RedisChannelLayer costs
    # two round trips (and a Lua call for each listener) per group, and the projector sends
    # to three groups for every order it changes: 0.24 against 0.12 ms of CPU a group
    # message, sent 30 at a time from the projector's thread. `PubSubChannelLayer` is that
    # layer plus one NUMSUB and one pipeline of PUBLISHes for a projector batch.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "platform_core.live.pubsub.PubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": os.environ.get("CHANNEL_LAYER_PREFIX", "asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": _channel_capacity}
    }
WEBSOCKET_MAX_INCOMING_BYTES = int(os.environ.get("WEBSOCKET_MAX_INCOMING_BYTES", "4096"))
WEBSOCKET_MAX_FRAME_BYTES = int(os.environ.get("WEBSOCKET_MAX_FRAME_BYTES", str(64 * 1024)))
# Daphne pings a connection idle this long and drops it when no pong comes in time: the way a
# client that stopped reading is found (Daphne's send never blocks the application).
WEBSOCKET_PING_INTERVAL = float(os.environ.get("WEBSOCKET_PING_INTERVAL", "20"))
WEBSOCKET_PING_TIMEOUT = float(os.environ.get("WEBSOCKET_PING_TIMEOUT", "30"))

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
# Celery beat's jobs: old outbox and inbox rows and expired Idempotency-Keys go once a day
# (PRUNE_EVERY_SECONDS), on the worker that consumes the `maintenance` queue.
CELERY_BEAT_SCHEDULE = {
    "prune-messages": {
        "task": "platform_core.prune_messages",
        "schedule": float(os.environ.get("PRUNE_EVERY_SECONDS", str(24 * 60 * 60))),
    },
    # Card tokens no charge used go once they expire (PAYMENT_TOKEN_TTL_SECONDS).
    "prune-payment-tokens": {
        "task": "payments.prune_token_vault",
        "schedule": float(os.environ.get("PRUNE_TOKENS_EVERY_SECONDS", str(15 * 60))),
    },
    # What RabbitMQ dead-lettered from the command queues goes into the dead-letter store.
    "drain-dead-letter-queues": {
        "task": "platform_core.drain_dead_letter_queues",
        "schedule": float(os.environ.get("DRAIN_DEAD_LETTERS_EVERY_SECONDS", "60")),
    },
}
# A worker process reconnects to the database for every task unless this is set (with
# CONN_MAX_AGE > 0 for the worker): then it keeps its connection for this many tasks.
if os.environ.get("CELERY_DB_REUSE_MAX"):
    CELERY_DB_REUSE_MAX = int(os.environ["CELERY_DB_REUSE_MAX"])
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
# A consumer that dies is replaced once the group's coordinator misses its heartbeats for
# this long (a clean stop leaves the group at once on Kafka). 6 s is Kafka's lowest by
# default (group.min.session.timeout.ms); a consumer stalled longer than that (a long GC
# pause, a database that hangs) is taken out of the group and its batch is redelivered.
KAFKA_SESSION_TIMEOUT_MS = int(os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000"))
# Static membership: a consumer restarted under the same id within the session timeout
# gets its partitions back without a rebalance (`manage.py consume --instance-id` too).
KAFKA_GROUP_INSTANCE_ID = os.environ.get("KAFKA_GROUP_INSTANCE_ID", "")

AUTHENTICATION_BACKENDS = [
    "platform_core.web.logins.LoginAttemptsBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed logins (platform_core.web.logins, django-axes): LOGIN_FAILURE_LIMIT failures from
# one client address, or for one username, lock it out of the token endpoint and the login
# forms for LOGIN_LOCKOUT_MINUTES (429). Counted in the database, shared by every process.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_LOCKOUT_TEMPLATE = "projections/locked_out.html"
AXES_DISABLE_ACCESS_LOG = True  # no row for each successful login, failures only
# Orders one user may place (POST /api/orders/), a DRF rate like "60/minute"; "off" for none.
# Counted in the cache: Redis (shared by every web process) when REDIS_URL is set.
ORDER_RATE_LIMIT = env_rate("ORDER_RATE_LIMIT", "60/minute")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("MAX_REQUEST_BYTES", 256 * 1024))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "platform_core.web.token_auth.PreparedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["platform_core.web.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "platform_core.web.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "platform_core.web.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "platform_core.web.http.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Order fulfillment API",
    "DESCRIPTION": "Event-sourced order fulfillment: place, follow and cancel orders.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The document and the docs page are public: a stale or wrong token is not looked at
    # (else a 401 in YAML or HTML), and the answer is the same for everyone.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Platform knobs.
# A product's stock, the one stream without end, is loaded by every command on it: replaying
# an event costs about 10 µs and writing a snapshot about 0.3 ms, so one every 20 events
# keeps a load to a snapshot and a few events (a stream of 52 events took 0.72 ms to load).
SNAPSHOT_EVERY = int(os.environ.get("SNAPSHOT_EVERY", "20"))
# How long a saga step waits for its reply before re-sending its command; each re-send
# waits twice as long (up to 8 times this), and the instance is flagged stuck after
# SAGA_STUCK_AFTER re-sends. A step that can be undone is compensated after
# SAGA_GIVE_UP_SECONDS without an answer; confirming the order is re-sent until it answers.
SAGA_STEP_SECONDS = float(os.environ.get("SAGA_STEP_SECONDS", "30"))
SAGA_GIVE_UP_SECONDS = float(os.environ.get("SAGA_GIVE_UP_SECONDS", "600"))
SAGA_STUCK_AFTER = int(os.environ.get("SAGA_STUCK_AFTER", "3"))
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
# How long a card token waits in the payment token vault for its charge: past it, the
# charge is declined (the card details expired) and the token is pruned. Longer than the
# payment step may legitimately wait (SAGA_GIVE_UP_SECONDS, Celery's retries).
PAYMENT_TOKEN_TTL_SECONDS = int(os.environ.get("PAYMENT_TOKEN_TTL_SECONDS", str(60 * 60)))
# The bearer token a Prometheus scraper sends for /metrics (closed without it unless DEBUG).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# A loop (projector, relay, consumer, saga timers) without a good round for this long is
# reported stalled in /metrics and /readyz (platform_core.operations.loops).
LOOP_STALL_SECONDS = float(os.environ.get("LOOP_STALL_SECONDS", "30"))
# After a round that did work, the relay and the projector start no other for this long
# (seconds from the round's start): under load, what commits meanwhile goes out in one
# batch (one update of the outbox, one read-model transaction) instead of one each; the
# first message after a quiet spell goes at once. Each hop of an order may wait this long.
RELAY_LINGER_SECONDS = float(os.environ.get("RELAY_LINGER_SECONDS", "0.01"))
PROJECTOR_LINGER_SECONDS = float(os.environ.get("PROJECTOR_LINGER_SECONDS", "0.02"))
# PostgreSQL ends the leading relay's session when it sends nothing for this long (a
# process stopped or hung while holding the leader's lock), so a standby takes over. A
# working leader queries every round: at least each second, or after each round's
# publishing (up to about 20 s when Kafka does not answer: keep this above that).
RELAY_LEADER_IDLE_SECONDS = float(os.environ.get("RELAY_LEADER_IDLE_SECONDS", "60"))
# How long a read given `min_position` waits for the projection
# (platform_core.web.read_your_writes).
READ_YOUR_WRITES_TIMEOUT = float(os.environ.get("READ_YOUR_WRITES_TIMEOUT", "5"))

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "platform_core.operations.logs.MessageContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"},
        "json": {"()": "platform_core.operations.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": os.environ.get("LOG_FORMAT", "text" if DEBUG else "json"),
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# The composition root that builds the bus, store and projections (see platform_core.runtime).
PLATFORM_RUNTIME = "config.bootstrap.build_runtime"

# The browser pages (projections.pages): log in, then the live order board.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "board"
LOGOUT_REDIRECT_URL = "login"
