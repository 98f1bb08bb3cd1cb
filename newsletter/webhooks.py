from newsletter.services import tracking_event_record


def handle_tracking_event(sender, event, esp_name, **kwargs):
    """Receiver of anymail's tracking signal (any ESP); anymail has checked WEBHOOK_SECRET."""
    tracking_event_record(event=event, esp_name=esp_name)
