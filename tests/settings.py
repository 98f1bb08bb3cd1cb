"""Test settings: the project's settings with in-process Celery and cache.

The integration tier talks to the real Redis and Celery worker itself (tests/test_integration_*.py),
reading REDIS_URL; DATABASE_URL still chooses the database, so the suite runs on SQLite and on
PostgreSQL alike.
"""

import tempfile

from config.settings import *  # noqa: F403

DIGEST_PROGRESS_DIR = tempfile.mkdtemp(prefix="paperboy-progress-")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://localhost/"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SITE_URL = "https://paperboy.test"
ALLOWED_HOSTS = ["*"]
ANYMAIL = {"WEBHOOK_SECRET": "hook:secret"}
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Threads of the live server must not keep connections open past the test (PostgreSQL
# refuses to drop a test database that is still in use).
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
