from django.apps import AppConfig


class NewsletterConfig(AppConfig):
    name = "newsletter"
    verbose_name = "Newsletter"

    def ready(self):
        from anymail.signals import tracking

        from newsletter.webhooks import handle_tracking_event

        tracking.connect(handle_tracking_event, dispatch_uid="newsletter-tracking")
