"""
oCenter settings, all from the environment.

Two shapes:

* embedded (the default, nothing set): SQLite under ``var/``, an in-memory
  channel layer, and Celery tasks run in-process with the periodic jobs
  driven from the ASGI server's lifespan (see ``ocenter.jobs``);
* production: ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` (channel layer
  and Celery broker), with a separate Celery worker and beat.

Production-safe defaults: DEBUG is off, and without DEBUG a SECRET_KEY must be
given.
"""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from ocenter.beat import beat_schedule

BASE_DIR = Path(__file__).resolve().parent.parent
# The site's own files: at the top of a checkout, or inside the package once installed from the wheel (setup.py).
INSTALLED = not (BASE_DIR / "templates").is_dir()
SITE_DIR = Path(__file__).resolve().parent / "site" if INSTALLED else BASE_DIR


def envbool(name, default):
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name, default):
    return int(os.getenv(name, default))


def envlist(name, default=""):
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", "False")

SECRET_KEY = os.getenv("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY (a long random string) or DEBUG=1 for a local run.")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"

# Keys for secrets oCenter must read back (pool tokens). Comma-separated
# Fernet keys, newest first, so a key can be rotated; derived from SECRET_KEY
# when unset.
OCENTER_ENCRYPTION_KEYS = envlist("OCENTER_ENCRYPTION_KEYS")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_htmx",
    "axes",
    "ocenter",
    "tenants",
    "pools",
    "billing",
]

MIDDLEWARE = [
    "ocenter.api.ProblemMiddleware",  # outermost: every error under /api/ is a problem document
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "ocenter.timezones.TimeZoneMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "ocenter.audit.AuditContextMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it answers a locked-out login
]

ROOT_URLCONF = "ocenter.urls"
ASGI_APPLICATION = "ocenter.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SITE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default keeps its files under var/: the checkout's (ignored by git), or the working directory's once installed.
VAR_DIR = Path(os.getenv("OCENTER_VAR_DIR", Path.cwd() / "var" if INSTALLED else BASE_DIR / "var"))

DATABASES = {
    "default": dj_database_url.parse(
        os.getenv("DATABASE_URL", f"sqlite:///{VAR_DIR / 'ocenter.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "0"),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and envint("DB_POOL_MAX", "0"):
    # Under ASGI each concurrent request runs in its own thread: a bounded pool,
    # not a persistent connection per thread, keeps PostgreSQL's slots.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 2, "max_size": envint("DB_POOL_MAX", "0"), "timeout": 10}}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections: checked before use only after a second idle (ocenter/db/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "ocenter.db.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if "DATABASE_URL" not in os.environ:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Writers queue instead of failing with "database is locked": the
    # in-process jobs write from their own threads beside the server.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"

# Who makes accounts: "staff" (the platform's staff, in the admin or the API; and single sign-on), or "invitations"
# (also a person invited to a tenant, by its link). Tenants' admins invite; they never learn whether a name is taken.
OCENTER_USER_CREATION = os.getenv("OCENTER_USER_CREATION", "staff")
if OCENTER_USER_CREATION not in ("staff", "invitations"):
    raise ImproperlyConfigured("OCENTER_USER_CREATION must be 'staff' or 'invitations'")

# Single sign-on (tenants/sso.py): on when a client id is set. The provider's endpoints are given, not discovered.
OCENTER_OIDC = bool(os.getenv("OCENTER_OIDC_CLIENT_ID"))
AUTHENTICATION_BACKENDS = ["ocenter.lockout.LoginAttemptsBackend", "django.contrib.auth.backends.ModelBackend"]
if OCENTER_OIDC:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS.insert(1, "tenants.sso.OIDCBackend")
    OIDC_RP_CLIENT_ID = os.environ["OCENTER_OIDC_CLIENT_ID"]
    OIDC_RP_CLIENT_SECRET = os.getenv("OCENTER_OIDC_CLIENT_SECRET", "")
    OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ["OCENTER_OIDC_AUTHORIZATION_ENDPOINT"]
    OIDC_OP_TOKEN_ENDPOINT = os.environ["OCENTER_OIDC_TOKEN_ENDPOINT"]
    OIDC_OP_USER_ENDPOINT = os.environ["OCENTER_OIDC_USERINFO_ENDPOINT"]
    OIDC_OP_JWKS_ENDPOINT = os.environ["OCENTER_OIDC_JWKS_ENDPOINT"]
    OIDC_OP_LOGOUT_URL = os.getenv("OCENTER_OIDC_LOGOUT_ENDPOINT", "")
    OIDC_RP_SIGN_ALGO = os.getenv("OCENTER_OIDC_SIGN_ALGO", "RS256")
    OIDC_RP_SCOPES = os.getenv("OCENTER_OIDC_SCOPES", "openid email profile")
    OIDC_TIMEOUT = float(os.getenv("OCENTER_OIDC_TIMEOUT", "10"))
    OIDC_VERIFY_SSL = envbool("OCENTER_OIDC_VERIFY_SSL", "True")
    LOGIN_REDIRECT_URL_FAILURE = "/login/?sso=failed"
OCENTER_OIDC_USERNAME_CLAIM = os.getenv("OCENTER_OIDC_USERNAME_CLAIM", "preferred_username")
OCENTER_OIDC_GROUPS_CLAIM = os.getenv("OCENTER_OIDC_GROUPS_CLAIM", "groups")
OCENTER_OIDC_STAFF_GROUPS = envlist("OCENTER_OIDC_STAFF_GROUPS")


def _tenant_groups(text: str) -> dict:
    """``"acme-admins=acme:admin,ops=acme:owner"`` → ``{group: [(tenant slug, role)]}``."""
    mapped = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        group, _, grant = item.partition("=")
        slug, _, role = grant.partition(":")
        if not (group and slug and role in ("owner", "admin", "member", "viewer")):
            raise ImproperlyConfigured(
                f"OCENTER_OIDC_TENANT_GROUPS: '{item}' is not group=tenant:role (role: owner, admin, member, viewer)"
            )
        mapped.setdefault(group.strip(), []).append((slug.strip(), role))
    return mapped


OCENTER_OIDC_TENANT_GROUPS = _tenant_groups(os.getenv("OCENTER_OIDC_TENANT_GROUPS", ""))
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [SITE_DIR / "locale"]
TIME_ZONE = os.getenv("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["ocenter.formats"]

STATIC_URL = "static/"
STATICFILES_DIRS = [SITE_DIR / "static"]
STATIC_ROOT = Path(os.getenv("STATIC_ROOT", VAR_DIR / "staticfiles" if INSTALLED else BASE_DIR / "staticfiles"))
# Without a collectstatic run (the embedded default), serve from the finders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# WhiteNoise hands Django's ASGI handler a file iterator, which Django then
# reads in a thread and warns about. Static files are small; in production put
# them behind the proxy or a CDN after collectstatic.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", "False" if DEBUG else "True")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if envbool("BEHIND_TLS_PROXY", "False"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Browsers come back over HTTPS only (a year, as the HSTS preload list asks; HSTS_SECONDS=0 turns it off).
    SECURE_HSTS_SECONDS = envint("HSTS_SECONDS", str(365 * 24 * 3600))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("HSTS_INCLUDE_SUBDOMAINS", "False")

# Content-Security-Policy (django-csp): scripts, styles, fonts and sockets from oCenter itself only; no inline script
# anywhere (pages use data- attributes, ocenter.js reads them). Inline style attributes stay allowed: bars are drawn
# with a width in the markup. The API docs' pages relax it for themselves (ocenter/api_urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Redis carries the channel layer and the Celery broker in production. Without
# it, live events stay in this process and Celery tasks run in-process.
REDIS_URL = os.getenv("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "False" if REDIS_URL else "True")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE

# Periodic jobs run in the ASGI server process when there is no Celery beat
# (the embedded default); ``ocenter.jobs`` drives the same beat table.
OCENTER_EMBEDDED_JOBS = envbool("OCENTER_EMBEDDED_JOBS", "False" if REDIS_URL else "True")

# How often every pool's health and inventory is synced, and how long oCenter
# waits on an agent before judging it unreachable.
OCENTER_POOL_SYNC_SECONDS = envint("OCENTER_POOL_SYNC_SECONDS", "10")
OCENTER_AGENT_CONNECT_TIMEOUT = float(os.getenv("OCENTER_AGENT_CONNECT_TIMEOUT", "2"))
OCENTER_AGENT_TIMEOUT = float(os.getenv("OCENTER_AGENT_TIMEOUT", "5"))
# The CA (PEM) that signed agents' certificates, for agents served over TLS (docs/POOLS.md); empty: the system's CAs.
OCENTER_AGENT_CA_FILE = os.getenv("OCENTER_AGENT_CA_FILE", "")
# How old this process's view of the fleet may get before placement reads it again (pools.fleet).
# The room itself is always checked in the database; a staler view only costs retries and packing.
OCENTER_FLEET_SECONDS = float(os.getenv("OCENTER_FLEET_SECONDS", "5"))
# How old the tenants' summed recent use (fair share's memory, half-life an hour) may get before it is summed again.
OCENTER_SHARES_SECONDS = float(os.getenv("OCENTER_SHARES_SECONDS", "5"))

# Admission checks run, in order, on every allocation request (like Django's
# password validators): each refuses by raising ocenter.errors.Refused.
OCENTER_ADMISSION_CHECKS = ["tenants.admission.quota_check", "billing.admission.budget_check"]

# Money is Decimal in one currency (ISO 4217).
OCENTER_CURRENCY = os.getenv("OCENTER_CURRENCY", "CNY")
EMAIL_BACKEND = os.getenv(
    "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend"
)
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "ocenter@localhost")

# Webhooks (ocenter/webhooks.py): how old this process's list of them may get; plain http:// endpoints (tests only);
# the CA of receivers whose certificates no system CA signed.
OCENTER_WEBHOOKS_SECONDS = float(os.getenv("OCENTER_WEBHOOKS_SECONDS", "5"))
OCENTER_WEBHOOKS_ALLOW_HTTP = envbool("OCENTER_WEBHOOKS_ALLOW_HTTP", "False")
# Endpoints on private, loopback or link-local addresses (the platform's own network): refused unless this is on.
OCENTER_WEBHOOKS_ALLOW_PRIVATE = envbool("OCENTER_WEBHOOKS_ALLOW_PRIVATE", "False")
OCENTER_WEBHOOKS_CA_FILE = os.getenv("OCENTER_WEBHOOKS_CA_FILE", "")

# How often running time is metered into usage records (and budgets checked).
OCENTER_METER_SECONDS = envint("OCENTER_METER_SECONDS", "60")

# Who may scrape /metrics (ocenter/metrics.py): a bearer token, or addresses (networks); neither: no endpoint.
OCENTER_METRICS_TOKEN = os.getenv("OCENTER_METRICS_TOKEN", "")
OCENTER_METRICS_ALLOW = envlist("OCENTER_METRICS_ALLOW")

CELERY_BEAT_SCHEDULE = beat_schedule(pool_sync_seconds=OCENTER_POOL_SYNC_SECONDS, meter_seconds=OCENTER_METER_SECONDS)

# Brute force (docs/OPERATIONS.md). Passwords (the login page, Basic on POST /api/v1/tokens): django-axes locks a
# username from an address after this many failures, for this long; the right password from another address still works.
AXES_FAILURE_LIMIT = envint("OCENTER_LOGIN_FAILURE_LIMIT", "10")
AXES_COOLOFF_TIME = timedelta(minutes=envint("OCENTER_LOGIN_COOLOFF_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "ocenter.lockout.locked_out"
AXES_ENABLE_ADMIN = False
# Bearer tokens: an address that sent this many unknown tokens in a minute is answered 429 until the minute ends.
OCENTER_BAD_TOKENS_PER_MINUTE = envint("OCENTER_BAD_TOKENS_PER_MINUTE", "20")
# The throttles' counters (and the bad tokens'): Redis in production, this process's memory in the embedded default.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.getenv("REDIS_URL"), "KEY_PREFIX": "ocenter"}
          if os.getenv("REDIS_URL") else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}  # fmt: skip

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        # Basic only lets a person trade a password for a token (POST /api/v1/tokens), and says so elsewhere.
        "tenants.authentication.PasswordForTokenAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.authentication.PerTokenThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "per_token": os.getenv("OCENTER_TOKEN_RATE", "10000/min"),
        "token_exchange": os.getenv("OCENTER_TOKEN_EXCHANGE_RATE", "30/min"),
    },
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "ocenter.api.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ocenter.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": ["ocenter.parsers.JSONParser", "ocenter.parsers.FormParser", "ocenter.parsers.MultiPartParser"],
}

# The schema and the docs pages: to signed-in people (a session or a token) unless OCENTER_PUBLIC_API_DOCS says anyone.
API_DOCS_PERMISSION = f"rest_framework.permissions.{'AllowAny' if envbool('OCENTER_PUBLIC_API_DOCS', 'False') else 'IsAuthenticated'}"
SPECTACULAR_SETTINGS = {
    "TITLE": "oCenter northbound API",
    "DESCRIPTION": "Tenants, quotas, pools and allocations. Authenticate with 'Authorization: Bearer ocn_…'. "
    "Errors are application/problem+json (RFC 9457).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": [API_DOCS_PERMISSION],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "ocenter.api.schema_postprocess"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # One line per task run is noise with a 10 s pool sync.
        "celery.app.trace": {"level": "WARNING"},
        # django-axes says every failed login at INFO; the audit log records them (and its lockouts are WARNINGs).
        "axes": {"level": "WARNING"},
    },
}
