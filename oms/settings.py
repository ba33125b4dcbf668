"""Settings for the back office, read from environment variables (12-factor).

Development runs with ``DEBUG=1`` on a SQLite file and a file-system Celery broker;
production sets ``DEBUG=0``, a real ``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL``
(PostgreSQL) and ``CELERY_BROKER_URL`` (Redis).
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("OMS_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-insecure-key-never-used-when-debug-is-off"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, no CDN
    "django_celery_beat",
    "inventory",
    "oms",
    "returns",
    "channels_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "oms.urls"
WSGI_APPLICATION = "oms.wsgi.application"

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

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'oms.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer, and
    # IMMEDIATE transactions make concurrent writers queue on the busy timeout instead of
    # failing with "database is locked" halfway through.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if env.bool("DATABASE_PREPARED_STATEMENTS", default=True):
        # The hot statements the code marks (``inventory.sql.sql_rows``: an order's
        # reservation, reads and inserts) are prepared once per connection; the huge
        # threshold keeps psycopg from preparing anything else. Turn off behind a
        # transaction-pooling PgBouncer older than 1.21.
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2**31 - 1

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGIN_URL = "admin:login"

# E-mail: console in development, SMTP from EMAIL_URL in production.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="backoffice@localhost")

# REST API: tokens for integrations, sessions for staff; Django permissions on every view.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["oms.api.permissions.StrictDjangoModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "oms.api.exceptions.domain_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Order management back office API",
    "DESCRIPTION": "Inventory, orders, returns and channel integration for marketplace sellers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "oms.models.OrderStatus",
        "ReservationStatusEnum": "inventory.models.Reservation.Status",
        "ReturnStatusEnum": "returns.models.ReturnStatus",
        "RefundStateEnum": "returns.models.Refund.State",
    },
}

# Celery: nothing is lost when a worker dies mid-task (late acks, reject on worker lost,
# prefetch 1), and nothing runs forever (time limits below the broker's visibility timeout).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
_broker_dir = VAR_DIR / "celery-broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The one place the periodic schedule is defined; beat writes it into the database at start.
CELERY_BEAT_SCHEDULE = {
    "stock-ledger-verify": {
        "task": "inventory.tasks.stock_ledger_verify_task",
        "schedule": env.int("LEDGER_VERIFY_EVERY_SECONDS", default=3600),
    },
    "order-soft-holds-expire": {
        "task": "oms.tasks.order_soft_holds_expire_task",
        "schedule": 60,
    },
    "channels-orders-poll": {
        "task": "channels_app.tasks.channels_orders_poll_task",
        "schedule": env.int("CHANNEL_POLL_TICK_SECONDS", default=10),
    },
    "pushes-sweep": {
        "task": "channels_app.tasks.pushes_sweep_task",
        "schedule": env.float("PUSH_SWEEP_EVERY_SECONDS", default=3.0),
    },
    "channels-reconcile": {
        "task": "channels_app.tasks.channels_reconcile_task",
        "schedule": env.int("RECONCILE_EVERY_SECONDS", default=900),
    },
    "fulfillment-sweep": {
        "task": "channels_app.tasks.fulfillment_sweep_task",
        "schedule": env.float("FULFILLMENT_SWEEP_EVERY_SECONDS", default=10.0),
    },
    "shipments-track": {
        "task": "channels_app.tasks.shipments_track_task",
        "schedule": env.int("TRACKING_TICK_SECONDS", default=60),
    },
    "shipment-confirmations-sweep": {
        "task": "channels_app.tasks.shipment_confirmations_sweep_task",
        "schedule": 60,
    },
    "channels-returns-import": {
        "task": "channels_app.tasks.channels_returns_import_task",
        "schedule": env.int("RETURNS_IMPORT_EVERY_SECONDS", default=900),
    },
    "channels-defects-import": {
        "task": "channels_app.tasks.channels_defects_import_task",
        "schedule": env.int("DEFECTS_IMPORT_EVERY_SECONDS", default=3600),
    },
    "refunds-sweep": {
        "task": "channels_app.tasks.refunds_sweep_task",
        "schedule": 120,
    },
    "return-answer-alerts": {
        "task": "returns.tasks.return_answer_alerts_task",
        "schedule": 600,
    },
    "return-late-answers-daily": {
        "task": "returns.tasks.late_answers_record_task",
        "schedule": crontab(minute=5, hour=0),
    },
    "order-backorders-retry": {
        "task": "oms.tasks.order_backorders_retry_task",
        "schedule": env.int("BACKORDER_RETRY_EVERY_SECONDS", default=300),
    },
    "order-deadline-alerts": {
        "task": "oms.tasks.order_deadline_alerts_task",
        "schedule": env.int("DEADLINE_ALERTS_EVERY_SECONDS", default=300),
    },
    "health-check": {
        "task": "oms.tasks.health_check_task",
        "schedule": env.int("HEALTH_CHECK_EVERY_SECONDS", default=300),
    },
    "health-snapshots-daily": {
        "task": "oms.tasks.health_snapshots_daily_task",
        "schedule": crontab(minute=10, hour=0),
    },
    "health-reports-check": {
        "task": "oms.tasks.health_reports_check_task",
        "schedule": crontab(minute=30, hour=6),
    },
}

# Channel credentials are encrypted at rest with Fernet keys from the environment
# (comma-separated, newest first, so keys can be rotated). Development derives one from
# SECRET_KEY; production must set its own.
CHANNEL_CREDENTIALS_KEYS = env.list("CHANNEL_CREDENTIALS_KEYS", default=[])
if not CHANNEL_CREDENTIALS_KEYS and not DEBUG:
    raise ImproperlyConfigured("CHANNEL_CREDENTIALS_KEYS must be set when DEBUG is off.")

# Orders
OMS_SOFT_HOLD_MINUTES = env.int("OMS_SOFT_HOLD_MINUTES", default=60)
OMS_DEADLINE_ALERT_LEAD_MINUTES = env.int("OMS_DEADLINE_ALERT_LEAD_MINUTES", default=120)
OMS_AT_RISK_MINUTES = env.int("OMS_AT_RISK_MINUTES", default=120)
# Task nudged (by name) after a shipment is recorded, to confirm it on the channel.
OMS_SHIPMENT_CONFIRMATION_TASK = "channels_app.tasks.shipment_confirm_task"
# Task nudged (by name) after an order's status or address changes, to tell its warehouse.
OMS_ORDER_CHANGED_TASK = "channels_app.tasks.fulfillment_sync_order_task"
# Carrier tracking: how long a number may be unknown to the carrier before it is flagged.
TRACKING_UNKNOWN_AFTER_HOURS = env.int("TRACKING_UNKNOWN_AFTER_HOURS", default=24)
CARRIER_TRACKING_URL = env.str("CARRIER_TRACKING_URL", default="")
TRACKING_POLL_MINUTES = env.int("TRACKING_POLL_MINUTES", default=30)
# Where warehouses reach our API (callback URLs sent with each order).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# Returns
RETURNS_RESPONSE_HOURS = 48
RETURNS_ALERT_BEFORE_HOURS = env.int("RETURNS_ALERT_BEFORE_HOURS", default=12)
RETURNS_QUARANTINE_WAREHOUSE = env.str("RETURNS_QUARANTINE_WAREHOUSE", default="")
RETURNS_CONTACT_EMAIL = env.str("RETURNS_CONTACT_EMAIL", default="")
RETURNS_REFUND_TASK = "channels_app.tasks.refund_send_task"

# Account health: the channel's own report, fetched by the channel layer.
OMS_HEALTH_REPORT_FETCHER = "channels_app.services.account_health.channel_account_health"

# Channels
RATE_LIMIT_REDIS_URL = env.str(
    "RATE_LIMIT_REDIS_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "",
)
INVENTORY_STOCK_CHANGE_TASK = "channels_app.tasks.stock_changes_process_task"
SYNC_VELOCITY_WINDOW_MINUTES = env.int("SYNC_VELOCITY_WINDOW_MINUTES", default=60)
SYNC_VELOCITY_BURST_MINUTES = env.int("SYNC_VELOCITY_BURST_MINUTES", default=5)
SYNC_PUSH_MAX_ATTEMPTS = env.int("SYNC_PUSH_MAX_ATTEMPTS", default=8)
SYNC_PUSH_LEASE_SECONDS = 90
CHANNEL_IMPORT_OVERLAP_SECONDS = env.int("CHANNEL_IMPORT_OVERLAP_SECONDS", default=300)
CHANNEL_IMPORT_INITIAL_DAYS = env.int("CHANNEL_IMPORT_INITIAL_DAYS", default=7)
# Claims, chargebacks and feedback change long after they open and no channel lists them by
# change time: every import reads back this many days (the 60-day defect window and more).
CHANNEL_DEFECTS_LOOKBACK_DAYS = env.int("CHANNEL_DEFECTS_LOOKBACK_DAYS", default=90)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
