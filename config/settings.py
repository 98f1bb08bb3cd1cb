"""Settings for paperboy, read from environment variables.

With nothing set the project runs embedded: SQLite, Celery tasks executed eagerly in
process, e-mail written to files under var/mail. With DATABASE_URL and REDIS_URL set it
runs as in production. See README.md for every variable.
"""

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from config.env import env_bool, env_floats, env_hour, env_int, env_list, env_networks, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"

# Links in mail and the confirmation pages: https in production, or they travel in clear.
SITE_URL = env_url("SITE_URL", "http://localhost:8000", https=not DEBUG)
SITE_NAME = env_str("SITE_NAME", "Paperboy")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", SITE_URL if SITE_URL.startswith("https") else "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "anymail",
    "health_check",
    "papers",
    "newsletter",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "config.context_processors.site",
            ],
        },
    },
]

if not os.environ.get("DATABASE_URL"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded SQLite file lives here
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'paperboy.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers write at the same time: write-ahead log, wait for locks rather than fail.
    # Checkpoints (each ends with an fsync) every 64 MB of log rather than every 4 MB:
    # sending writes each delivery twice, and workers wait on each checkpoint.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=16384;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Redis: broker, and the shared cache that rate limits count on.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # One process in embedded mode: the local-memory cache is shared enough.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
RATELIMIT_USE_CACHE = "default"
# Behind N proxies of your own (a load balancer, nginx), set TRUSTED_PROXY_COUNT=N: the client
# is the Nth address from the right of X-Forwarded-For (config/client_ip.py). Rate limits and
# the IP kept with consent use it.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
RATELIMIT_IP_META_KEY = "config.client_ip.ratelimit_ip"
if env_str("RATELIMIT_IP_META_KEY"):
    raise ImproperlyConfigured("RATELIMIT_IP_META_KEY is replaced by TRUSTED_PROXY_COUNT (see README, Production)")

# Celery. Without REDIS_URL tasks run eagerly, in process.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
# Deliveries are claimed in the database, so a re-run task is harmless: acknowledge late and
# let Redis hand a lost task to another worker.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than any task, countdown or retry backoff, or Redis re-delivers tasks still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600)}
CELERY_TIMEZONE = "UTC"
# Three queues, each with workers of its own (Procfile: worker, mail, papers): a confirmation
# or "send my link" mail never waits behind a morning's digests, and only the papers workers
# load the text model (imports, fetches, re-tagging, embedding, the lexical model's refit, a
# reader's seeds fetched from arXiv). Everything else goes on the digest queue.
CELERY_TASK_QUEUES = (Queue("digest"), Queue("mail"), Queue("papers"))
CELERY_TASK_DEFAULT_QUEUE = "digest"
CELERY_TASK_ROUTES = {
    "newsletter.tasks.subscriber_signup_task": {"queue": "mail"},
    "newsletter.tasks.subscriber_send_link_task": {"queue": "mail"},
    "newsletter.tasks.subscriber_send_data_link_task": {"queue": "mail"},
    "newsletter.tasks.subscriber_seeds_fetch_task": {"queue": "papers"},
    "papers.tasks.*": {"queue": "papers"},
}
FETCH_HOUR = env_hour("FETCH_HOUR", 5)  # UTC, for the paper sources: before the earliest digest hour
CELERY_BEAT_SCHEDULE = {
    "dispatch-digests": {
        "task": "newsletter.tasks.dispatch_digests_task",
        "schedule": crontab(minute="*/5"),
    },
    "record-offered": {
        "task": "newsletter.tasks.record_offered_task",
        "schedule": crontab(minute="*/5"),
    },
    "takeover-deliveries": {
        "task": "newsletter.tasks.takeover_deliveries_task",
        "schedule": crontab(minute="*"),
    },
    "reconcile-deliveries": {
        "task": "newsletter.tasks.reconcile_deliveries_task",
        "schedule": crontab(minute="*/15"),
    },
    "fetch-papers": {
        "task": "papers.tasks.fetch_papers_task",
        "schedule": crontab(minute=0, hour=FETCH_HOUR),
    },
    "embed-papers": {  # what an import did not queue: papers an editor changed, a task lost with its worker
        "task": "papers.tasks.embed_papers_task",
        "schedule": crontab(minute="*/15"),
    },
    "refit-lexical": {  # weekly, away from the morning's fetch and digests
        "task": "papers.tasks.refit_lexical_task",
        "schedule": crontab(minute=30, hour=(FETCH_HOUR + 12) % 24, day_of_week=0),
    },
    "purge-unconfirmed": {
        "task": "newsletter.tasks.purge_unconfirmed_task",
        "schedule": crontab(minute=17, hour=3),
    },
}

# E-mail. Default: each message written to a file under var/mail (the local mail sink).
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Paperboy <digest@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where replies to digests go (Reply-To), e.g. the editors' inbox; empty: to DEFAULT_FROM_EMAIL.
DIGEST_REPLY_TO = env_str("DIGEST_REPLY_TO", "")
if any(c in DIGEST_REPLY_TO for c in "\r\n"):
    raise ImproperlyConfigured("DIGEST_REPLY_TO must be a single line")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
# Any anymail ESP: EMAIL_BACKEND=anymail.backends.mailgun.EmailBackend (for batch sending,
# newsletter.esp.MailgunBackend, see README) plus ANYMAIL_* variables,
# e.g. ANYMAIL_MAILGUN_API_KEY, ANYMAIL_WEBHOOK_SECRET ("user:password").
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_")
}
if not DEBUG and EMAIL_BACKEND.endswith(("filebased.EmailBackend", "console.EmailBackend")):
    raise ImproperlyConfigured("Set EMAIL_BACKEND (SMTP or an anymail ESP) when DEBUG is off")
# Without it anymail's tracking webhooks accept anyone's posts: a forged bounce would
# suppress any subscriber.
if not DEBUG and EMAIL_BACKEND.startswith(("anymail.", "newsletter.esp.")) and not ANYMAIL.get("WEBHOOK_SECRET"):
    raise ImproperlyConfigured("Set ANYMAIL_WEBHOOK_SECRET (user:password for the ESP's webhooks) when DEBUG is off")

# Subscriptions.
CONFIRM_MAX_AGE_HOURS = env_int("CONFIRM_MAX_AGE_HOURS", 72, minimum=1)
PURGE_UNCONFIRMED_DAYS = env_int("PURGE_UNCONFIRMED_DAYS", 7, minimum=1)
CONFIRMATIONS_PER_ADDRESS_PER_DAY = env_int("CONFIRMATIONS_PER_ADDRESS_PER_DAY", 3, minimum=1)
SIGNUPS_PER_IP_PER_HOUR = env_int("SIGNUPS_PER_IP_PER_HOUR", 20, minimum=1)
SOFT_BOUNCE_LIMIT = env_int("SOFT_BOUNCE_LIMIT", 3, minimum=1)
SOFT_BOUNCE_WINDOW_DAYS = env_int("SOFT_BOUNCE_WINDOW_DAYS", 30, minimum=1)
# Secret salt for the hashes kept of erased addresses; defaults to SECRET_KEY.
SUPPRESSION_SALT = env_str("SUPPRESSION_SALT", SECRET_KEY)

# Digests.
DIGEST_DEFAULT_HOUR = env_hour("DIGEST_DEFAULT_HOUR", 7)
DIGEST_MAX_PAPERS = env_int("DIGEST_MAX_PAPERS", 10, minimum=1)
# Recipients per task. Larger batches mean fewer statements, tasks and (batch mode) ESP calls
# (docs/performance.md); the price, since recovery settles a dead worker's group, is only time.
DIGEST_BATCH_SIZE = env_int("DIGEST_BATCH_SIZE", 1000, minimum=1)
DIGEST_DAILY_LOOKBACK_DAYS = env_int("DIGEST_DAILY_LOOKBACK_DAYS", 2, minimum=1)
DIGEST_WEEKLY_LOOKBACK_DAYS = env_int("DIGEST_WEEKLY_LOOKBACK_DAYS", 8, minimum=1)
# Rows claimed at a time while sending: fewer costs more queries. At most 5,000: a group's
# outcomes are recorded in one statement of up to five values a row, and SQLite takes 32,766.
DIGEST_CLAIM_SIZE = env_int("DIGEST_CLAIM_SIZE", 1000, minimum=1, maximum=5000)
DIGEST_MAX_ATTEMPTS = env_int("DIGEST_MAX_ATTEMPTS", 6, minimum=1)
# A mail server that cannot be reached charges no attempt (nothing was tried), so that an outage
# costs no edition; rows queued longer ago than this fail then, rather than wait for ever.
DIGEST_UNREACHABLE_HOURS = env_int("DIGEST_UNREACHABLE_HOURS", 24, minimum=1)
# "message": one message per recipient (SMTP, any ESP). "batch": one ESP API call per group of
# recipients with identical content, personalised by merge data; needs an anymail ESP that
# merges on the fly (Mailgun, SparkPost, Brevo, Mailjet...) and its merge-field syntax.
DIGEST_SENDING = env_str("DIGEST_SENDING", "message")
if DIGEST_SENDING not in ("message", "batch"):
    raise ImproperlyConfigured(f"DIGEST_SENDING must be 'message' or 'batch', got {DIGEST_SENDING!r}")
DIGEST_MERGE_FIELD = env_str("DIGEST_MERGE_FIELD", "%recipient.{}%")  # Mailgun; SparkPost: {{{{{}}}}}
DIGEST_BATCH_LIMIT = env_int("DIGEST_BATCH_LIMIT", 1000, minimum=1)  # recipients per call: Mailgun 1000, Postmark 500, SES 50
DIGEST_SENDING_TIMEOUT_MINUTES = env_int("DIGEST_SENDING_TIMEOUT_MINUTES", 30, minimum=1)
# A worker records what its group has sent in the database every DIGEST_CHECKPOINT_SIZE
# messages or every second, whichever comes first, and so beats; a group that has not beaten
# for DIGEST_HEARTBEAT_TIMEOUT_SECONDS is taken over by any worker (keep it above EMAIL_TIMEOUT).
# 0: none, the default on SQLite, whose workers all run on its one machine: no host can be lost
# there, the progress files settle a crash, and each checkpoint is a write the other workers
# wait for (a fifth more time a digest in bench/digests.py).
DIGEST_CHECKPOINT_SIZE = env_int(
    "DIGEST_CHECKPOINT_SIZE", 0 if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else 250, minimum=0
)
DIGEST_HEARTBEAT_TIMEOUT_SECONDS = env_int("DIGEST_HEARTBEAT_TIMEOUT_SECONDS", 120, minimum=10)
# Where each worker records what it has sent of the group it holds (newsletter/progress.py):
# local to the machine its workers run on, read back when a worker there dies.
DIGEST_PROGRESS_DIR = Path(env_str("DIGEST_PROGRESS_DIR", str(VAR_DIR / "progress")))

# The text model of papers (papers/vectors.py: "minilm" or "wordllama"); after a change,
# `manage.py embed_papers` re-embeds the papers.
PAPER_TEXT_MODEL = env_str("PAPER_TEXT_MODEL", "minilm")
if PAPER_TEXT_MODEL not in ("minilm", "wordllama"):
    raise ImproperlyConfigured(f"PAPER_TEXT_MODEL must be 'minilm' or 'wordllama', got {PAPER_TEXT_MODEL!r}")

# Ranking weights, their one home (newsletter/ranking.py reads them; README "Ranking").
# RANKING_WEIGHTS=profile:3,author:1 overrides some of them. profile and threshold are
# calibrated to the stored vectors' cosines (bench/ranking.py --real): a profile matches the
# top quarter of papers on offer, and its top tenth weighs as a followed topic.
RANKING_WEIGHTS = {
    "topic": 1.0,
    "keyword": 0.8,
    "author": 1.5,
    "profile": 2.4,
    "trending": 0.5,
    "threshold": 0.35,
    **env_floats("RANKING_WEIGHTS", {"topic", "keyword", "author", "profile", "trending", "threshold"}),
}
# Interests drift: a vote weighs half as much after this many days, and only each subscriber's
# latest votes are read for their profile.
VOTE_HALF_LIFE_DAYS = env_int("VOTE_HALF_LIFE_DAYS", 90, minimum=1)
PROFILE_VOTES_READ = env_int("PROFILE_VOTES_READ", 50, minimum=1)
# Exploration: this share of a voter's papers comes from outside their profile, labelled so.
EXPLORE_SHARE = env_int("EXPLORE_PERCENT", 15, minimum=0, maximum=50) / 100

# Paper sources (papers/sources.py). Base URLs, so tests and mirrors can point elsewhere.
DAILY_PAPERS_API = env_str("DAILY_PAPERS_API", "https://huggingface.co").rstrip("/")
ARXIV_API = env_str("ARXIV_API", "https://export.arxiv.org").rstrip("/")
ARXIV_CATEGORIES = env_list("ARXIV_CATEGORIES", "")  # e.g. cs.LG,cs.CL: new submissions to watch
ARXIV_MAX_RESULTS = env_int("ARXIV_MAX_RESULTS", 100, minimum=1)
ARXIV_MIN_INTERVAL = float(env_int("ARXIV_MIN_INTERVAL_MS", 3000, minimum=0)) / 1000  # arXiv asks for 3 s
FETCH_CATCH_UP_DAYS = env_int("FETCH_CATCH_UP_DAYS", 7, minimum=1)
HTTP_CONNECT_TIMEOUT = env_int("HTTP_CONNECT_TIMEOUT_MS", 5000, minimum=1) / 1000
HTTP_READ_TIMEOUT = env_int("HTTP_READ_TIMEOUT_MS", 30000, minimum=1) / 1000
HTTP_RETRIES = env_int("HTTP_RETRIES", 4, minimum=0)
HTTP_BACKOFF = env_int("HTTP_BACKOFF_MS", 2000, minimum=0) / 1000

# Operations (README, Production): /metrics answers a bearer token or these addresses (and
# networks); with neither set it is not served at all.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_IPS = env_networks("METRICS_ALLOWED_IPS")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
