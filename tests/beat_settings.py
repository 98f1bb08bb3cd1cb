"""The production settings with every periodic task due each minute: for the tests that run
real beat processes (tests/test_integration_health.py)."""

from celery.schedules import crontab

from config.settings import *  # noqa: F403

CELERY_BEAT_SCHEDULE = {name: {**entry, "schedule": crontab()} for name, entry in CELERY_BEAT_SCHEDULE.items()}  # noqa: F405
