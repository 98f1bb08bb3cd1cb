"""Settings come from the environment; production refuses unsafe or malformed ones."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-secret-key-for-the-deploy-check-0123456789abcdef",
    "ALLOWED_HOSTS": "paperboy.example.org",
    "SITE_URL": "https://paperboy.example.org",
    "EMAIL_BACKEND": "anymail.backends.mailgun.EmailBackend",
    "ANYMAIL_MAILGUN_API_KEY": "key",
    "ANYMAIL_WEBHOOK_SECRET": "user:password",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_the_deploy_check_passes_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key_or_a_real_mail_backend():
    no_key = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    assert "SECRET_KEY must be set" in manage("check", **no_key).stderr
    file_mail = {**PRODUCTION, "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend"}
    assert "Set EMAIL_BACKEND" in manage("check", **file_mail).stderr


def test_a_malformed_value_is_an_error_not_a_default():
    assert "DEBUG must be a boolean" in manage("check", DEBUG="maybe").stderr
    assert "DIGEST_MAX_PAPERS must be an integer" in manage("check", DIGEST_MAX_PAPERS="ten").stderr
    assert "RANKING_WEIGHTS: unknown key 'colour'" in manage("check", RANKING_WEIGHTS="colour:1").stderr
    assert "METRICS_ALLOWED_IPS: 'office' does not appear to be" in manage("check", METRICS_ALLOWED_IPS="10.0.0.1,office").stderr


def test_every_model_change_has_its_migration():
    result = manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_a_site_url_that_is_not_https():
    for url in ["http://paperboy.example.org", "paperboy.example.org", "https://"]:
        assert "SITE_URL must be an absolute https:// URL" in manage("check", **{**PRODUCTION, "SITE_URL": url}).stderr


def test_hours_out_of_range_are_refused_at_start_up():
    assert "FETCH_HOUR must be at most 23, got 25" in manage("check", FETCH_HOUR="25").stderr
    assert "DIGEST_DEFAULT_HOUR must be at least 0, got -1" in manage("check", DIGEST_DEFAULT_HOUR="-1").stderr


def test_a_claim_too_large_to_record_in_one_statement_is_refused_at_start_up():
    assert "DIGEST_CLAIM_SIZE must be at most 5000, got 6000" in manage("check", DIGEST_CLAIM_SIZE="6000").stderr
    assert manage("check", DIGEST_CLAIM_SIZE="5000").returncode == 0


def test_production_with_an_esp_refuses_to_start_without_a_webhook_secret():
    no_secret = {k: v for k, v in PRODUCTION.items() if k != "ANYMAIL_WEBHOOK_SECRET"}
    assert "Set ANYMAIL_WEBHOOK_SECRET" in manage("check", **no_secret).stderr
    smtp = {**no_secret, "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend"}
    result = manage("check", **smtp)
    assert result.returncode == 0, result.stderr


def test_the_old_forwarded_header_setting_is_refused_with_a_pointer_to_its_replacement():
    result = manage("check", RATELIMIT_IP_META_KEY="HTTP_X_FORWARDED_FOR")
    assert "RATELIMIT_IP_META_KEY is replaced by TRUSTED_PROXY_COUNT" in result.stderr
    assert "TRUSTED_PROXY_COUNT must be at least 0" in manage("check", TRUSTED_PROXY_COUNT="-1").stderr


def test_every_mail_a_reader_waits_for_goes_on_the_mail_queue_and_digests_on_theirs():
    # A morning's digests must not delay a confirmation, a preferences link or a data link.
    from config.celery import app
    from newsletter import tasks

    def queue(task):
        return app.amqp.router.route({}, task.name)["queue"].name

    for task in (tasks.subscriber_signup_task, tasks.subscriber_send_link_task, tasks.subscriber_send_data_link_task):
        assert queue(task) == "mail", task.name
    assert queue(tasks.send_deliveries_task) == "digest"


def test_what_loads_the_text_model_goes_on_the_papers_queue_and_every_queue_has_a_procfile_worker():
    # Only the papers workers load the text model: a sending worker never holds its weights.
    import re

    from django.conf import settings

    from config.celery import app
    from newsletter import tasks
    from papers import tasks as papers_tasks

    def queue(task):
        return app.amqp.router.route({}, task.name)["queue"].name

    for task in (papers_tasks.embed_papers_task, papers_tasks.import_papers_task, papers_tasks.fetch_papers_task,
                 papers_tasks.refit_lexical_task, tasks.subscriber_seeds_fetch_task):
        assert queue(task) == "papers", task.name
    consumed = set(re.findall(r"worker -Q (\w+)", (ROOT / "Procfile").read_text()))
    assert consumed == {q.name for q in settings.CELERY_TASK_QUEUES} == {"digest", "mail", "papers"}
