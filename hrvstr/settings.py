"""HRVSTR Billing settings: every knob comes from the environment, parsed strictly.

A bad value (``DEBUG=maybe``) is an error at start-up, not a silent default. Development
defaults are safe for a laptop; production must set ``SECRET_KEY`` (there is no fallback
when ``DEBUG`` is off).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from hrvstr import csp as csp_policy

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HRVSTR_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("HRVSTR_TESTING", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "hrvstr.admin_site.SupportAdminConfig",  # django.contrib.admin with our site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_simplejwt",
    "corsheaders",
    "csp",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djstripe",
    # Our apps come after djstripe so their webhook receivers run after dj-stripe's sync.
    "activities",
    "subscriptions",
    "billing",
    # The project package is an app too: the page plumbing every app's pages share (the
    # ``money`` template tags, site.css).
    "hrvstr",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Stripe's deliveries skip what follows, which serves browsers (billing/endpoint.py).
    "billing.endpoint.WebhookFastPath",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "hrvstr.messages.LazyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every response gets a Content-Security-Policy (hrvstr/csp.py).
    "hrvstr.csp.ContentSecurityPolicyMiddleware",
    # A 404 or 405 under /api/ answers JSON, not the HTML page.
    "hrvstr.errors.ApiErrorsAsJsonMiddleware",
]

# Content-Security-Policy (django-csp): our own origin only, no inline code; see hrvstr/csp.py.
# CSP_EXTRA adds sources ("connect-src https://x; img-src https://y"); a served SPA gets
# CSP_SPA_DIRECTIVES (plus SPA_CSP_EXTRA) through csp_override on its view.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": csp_policy.with_extra(
        csp_policy.base_directives(), os.environ.get("CSP_EXTRA", "")
    )
}
CSP_SPA_DIRECTIVES = csp_policy.with_extra(
    CONTENT_SECURITY_POLICY["DIRECTIVES"], os.environ.get("SPA_CSP_EXTRA", "")
)

ROOT_URLCONF = "hrvstr.urls"
WSGI_APPLICATION = "hrvstr.wsgi.application"

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
                "billing.context_processors.dunning",
                "billing.context_processors.test_clock",
            ],
        },
    },
]

# Databases: SQLite is the zero-setup default; PostgreSQL (psycopg 3, pooled) in production/CI.
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'hrvstr.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if env_bool("DATABASE_POOL", False):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": env_int("DATABASE_POOL_MAX", 10),
            "timeout": 10,
        }
    else:
        # Persistent connections, checked once per request (a SELECT 1 round trip) so a
        # restarted PostgreSQL costs no failed request. The pool (DATABASE_POOL=true, the
        # production image's default) checks connections itself: no per-request round trip.
        DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("CONN_HEALTH_CHECKS", True)
    # The statements run on every request or delivery (the user lookup, hrvstr/auth.py; a
    # webhook's store-and-enqueue, billing/tasks.py; a charge and an unlock,
    # subscriptions/services/charge.py) are prepared: planning them cost PostgreSQL more than
    # running them. Django disables preparation by default for external poolers; only
    # hrvstr.db.prepared_cursor binds server-side, so Django's own queries stay unprepared
    # either way. PgBouncer in transaction mode before 1.21 (or without
    # max_prepared_statements) needs DATABASE_PREPARED_STATEMENTS=false.
    if env_bool("DATABASE_PREPARED_STATEMENTS", True):
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
    # A lock that cannot be had in time becomes a 503 (Stripe retries), not a hung worker.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "options", f"-c lock_timeout={env_int('DB_LOCK_TIMEOUT_MS', 5000)}"
    )
else:
    # SQLite: wait for the writer instead of failing at once with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Background tasks (billing/tasks.py): webhook processing and the scheduled jobs.
# "queue": Procrastinate, a task queue in PostgreSQL (jobs are rows, enqueued in the same
# transaction as the webhook delivery they process; `python manage.py procrastinate worker`
# runs them). "inline": the same tasks run in-process once the transaction commits (SQLite,
# where Procrastinate cannot run, and the test suite). Default: "queue" on PostgreSQL outside
# tests, else "inline".
_ON_POSTGRESQL = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
TASK_MODE = os.environ.get(
    "HRVSTR_TASK_MODE", "queue" if _ON_POSTGRESQL and not TESTING else "inline"
)
if TASK_MODE not in ("queue", "inline"):
    raise ImproperlyConfigured(f"HRVSTR_TASK_MODE={TASK_MODE!r}: 'queue' or 'inline'")
if TASK_MODE == "queue" and not _ON_POSTGRESQL:
    raise ImproperlyConfigured("HRVSTR_TASK_MODE=queue needs PostgreSQL (DATABASE_URL)")
if _ON_POSTGRESQL:
    # Its tables exist on every PostgreSQL database (tests on PostgreSQL use the real queue
    # where they ask for it); its migrations are PostgreSQL SQL, so never on SQLite.
    INSTALLED_APPS.insert(INSTALLED_APPS.index("djstripe"), "procrastinate.contrib.django")
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = "tasks"
# Workers started by `manage.py procrastinate worker` take these unless told otherwise.
PROCRASTINATE_WORKER_DEFAULTS = {
    "concurrency": env_int("WORKER_CONCURRENCY", 1),
    "fetch_job_polling_interval": 2.0,
}

# No request we serve carries more than this (hrvstr.wsgi refuses bigger bodies unread, 413);
# Django's own form limit follows it.
HRVSTR_MAX_REQUEST_BYTES = env_int("HRVSTR_MAX_REQUEST_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = HRVSTR_MAX_REQUEST_BYTES

# Cache (rate limits): Redis when REDIS_URL is set, otherwise a database cache, which is still
# shared by every process on the same database (a per-process cache would let limits be dodged).
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "hrvstr.cache.AtomicDatabaseCache",
            "LOCATION": "hrvstr_cache",
        }
    }
# django-ratelimit only knows its own list of caches: Django's RedisCache is atomic (INCR) and
# hrvstr.cache.AtomicDatabaseCache locks the row, so both are sound for rate limits.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
# bench/ compares our endpoints with a bare one served by the same process (the framework's
# floor); it exists only when this is on.
HRVSTR_BENCH_ENDPOINTS = env_bool("HRVSTR_BENCH_ENDPOINTS", False)
RATELIMIT_VIEW = "hrvstr.errors.ratelimited"
# Only trust X-Forwarded-For when a proxy we control sets it (otherwise clients pick their IP).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
RATELIMIT_IP_META_KEY = "hrvstr.http.client_ip"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Validates nothing: its password_changed hook revokes the user's JWTs on every change.
    {"NAME": "subscriptions.tokens.RevokeTokensOnPasswordChange"},
]
AUTHENTICATION_BACKENDS = ["hrvstr.auth.EmailBackend"]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/billing/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@hrvstr.local")
# SMTP (EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend): receipts, failed payments,
# plan changes (activities/notifications.py) and password resets.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hrvstr.auth.AccountJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "hrvstr.negotiation.OneRendererNegotiation",
    "DEFAULT_PARSER_CLASSES": ["hrvstr.parsing.StrictJSONParser"],
    "EXCEPTION_HANDLER": "hrvstr.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# The original SPA counts itself signed in for 7 days after sign-in and refreshes only in the
# last 24 hours, so access tokens live 7 days by default; revocation does not wait for expiry
# (every request checks the user's token generation: subscriptions/tokens.py).
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 7 * 24 * 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 30)),
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY", SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "HRVSTR Billing API",
    "DESCRIPTION": "Subscription tiers, credits and Stripe billing for the HRVSTR SPA.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page must work offline: assets come from the sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# CORS: nothing cross-origin unless listed (the SPA's own origin, e.g. a Vite dev server).
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "if-none-match",
    "x-csrftoken",
    "x-requested-with",
    # The original SPA sends these with tier-info and the activity feed (cache busting).
    "cache-control",
    "pragma",
    "expires",
]
CORS_EXPOSE_HEADERS = ["ETag", "Retry-After"]

# Google sign-in: the OAuth client id(s) whose ID tokens we accept (comma-separated).
GOOGLE_CLIENT_IDS = env_list("GOOGLE_CLIENT_ID")

# The original HRVSTR SPA, built (`vite build`): when set, its index.html answers the SPA's
# client routes and its assets are served by whitenoise, beside our pages and API.
SPA_DIST_DIR = os.environ.get("SPA_DIST_DIR", "")
if SPA_DIST_DIR:
    if not (Path(SPA_DIST_DIR) / "index.html").is_file():
        raise ImproperlyConfigured(f"SPA_DIST_DIR={SPA_DIST_DIR!r} has no index.html")
    # Vite names its bundles by content hash under assets/: cached for a year.
    WHITENOISE_ROOT = SPA_DIST_DIR
    # (and Django's manifest-hashed static files): the pattern is hrvstr.spa's.
    WHITENOISE_IMMUTABLE_FILE_TEST = (
        r"^/(assets/.+-[0-9A-Za-z_-]{8,}|static/.+\.[0-9a-f]{12})\.[0-9a-z]+$"
    )

# Billing rules that are settings, not code.
BILLING_GRACE_PERIOD_DAYS = env_int("BILLING_GRACE_PERIOD_DAYS", 7)
CREDIT_HOLD_MINUTES = env_int("CREDIT_HOLD_MINUTES", 15)
# Auto top-up buys at most this many bundles per allowance period (billing/auto_topup.py).
AUTO_TOPUP_MAX_PER_PERIOD = env_int("AUTO_TOPUP_MAX_PER_PERIOD", 3)

# Stripe. Test and live keys stay apart: live keys are read only with STRIPE_LIVE_MODE on,
# and billing's system checks refuse mixed-up keys at start-up.
STRIPE_LIVE_MODE = env_bool("STRIPE_LIVE_MODE", False)
STRIPE_TEST_SECRET_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
STRIPE_LIVE_SECRET_KEY = os.environ.get("STRIPE_LIVE_SECRET_KEY", "") if STRIPE_LIVE_MODE else ""
STRIPE_TEST_WEBHOOK_SECRET = os.environ.get("STRIPE_TEST_WEBHOOK_SECRET", "")
STRIPE_LIVE_WEBHOOK_SECRET = (
    os.environ.get("STRIPE_LIVE_WEBHOOK_SECRET", "") if STRIPE_LIVE_MODE else ""
)
# Where the SDK sends requests: empty means real Stripe; the offline emulator sets its address.
if os.environ.get("STRIPE_API_HOST"):
    STRIPE_API_HOST = os.environ["STRIPE_API_HOST"]
# Every Stripe request (ours and dj-stripe's) gives up after this many seconds per attempt
# and is retried this many times (idempotency keys make retries safe); the worst case,
# (retries + 1) x timeout + ~1 s, stays under gunicorn's 30 s request timeout.
STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 10)
# A webhook's object is read in one call with what our rules need expanded (billing/
# event_objects.py). Off: dj-stripe's own handlers, a call per related object it has no row
# for; the fallback should a dj-stripe upgrade store nested objects differently.
STRIPE_EVENT_OBJECTS_EXPANDED = env_bool("STRIPE_EVENT_OBJECTS_EXPANDED", True)
STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 1)

# ``make run`` on the offline Stripe: the app's clock follows the emulator's (billing/devclock.py;
# DEBUG, test mode and a loopback STRIPE_API_HOST only).
STRIPE_FOLLOW_EMULATOR_CLOCK = env_bool("STRIPE_FOLLOW_EMULATOR_CLOCK", False)
if STRIPE_FOLLOW_EMULATOR_CLOCK:
    # A session's expiry is checked against timezone.now, which then follows the emulator:
    # two weeks of time travel would sign the person trying it out.
    SESSION_COOKIE_AGE = 10 * 365 * 86400
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# The webhook URL refuses bigger bodies unread (Stripe's events are a few KB; invoices with
# many lines a few hundred), and answers 429 to an address after this many refused posts.
STRIPE_WEBHOOK_MAX_BYTES = env_int("STRIPE_WEBHOOK_MAX_BYTES", 512 * 1024)
STRIPE_WEBHOOK_REFUSED_RATE = os.environ.get("STRIPE_WEBHOOK_REFUSED_RATE", "30/m")
# dj-stripe's migrations replay 500+ field removals (60-140 s); ours is one squashed migration
# with ``replaces`` naming upstream's, so databases migrated either way agree (see README).
MIGRATION_MODULES = {"djstripe": "billing.djstripe_migrations"}
# STRIPE_API_VERSION is deliberately unset: it follows the pinned stripe-python (see README).

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # stripe-python logs every request at INFO; our gateway logs what matters.
        "stripe": {"level": "WARNING"},
        # Procrastinate logs each periodic task's registration at every start-up; the
        # worker's job outcomes (procrastinate.worker) stay at INFO.
        "procrastinate.periodic": {"level": "WARNING"},
    },
}

# Production hardening, on whenever DEBUG is off (a reverse proxy terminates TLS).
if not DEBUG and not TESTING:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # The container's own health check speaks plain HTTP to the app, not through the proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
