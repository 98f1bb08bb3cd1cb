import pytest
from django.contrib.auth.models import User

from tests.conftest import make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("editor", "e@example.org", "pw"))
    return client


def test_the_list_shows_counts_per_status_and_topic_and_filters(admin_client):
    make_subscriber("a@example.org", topics=["robotics"])
    make_subscriber("b@example.org", status="pending")
    make_subscriber("c@example.org", status="suppressed")
    page = admin_client.get("/admin/newsletter/subscriber/").content.decode()
    assert "Active: 1" in page and "Pending confirmation: 1" in page and "Suppressed: 1" in page
    assert "Robotics: 1" in page
    filtered = admin_client.get("/admin/newsletter/subscriber/?status__exact=pending").content.decode()
    assert "b@example.org" in filtered and "a@example.org" not in filtered
    assert "a@example.org" in admin_client.get("/admin/newsletter/subscriber/?q=a@example").content.decode()


def test_csv_export_of_selected_subscribers(admin_client):
    a = make_subscriber("a@example.org", topics=["robotics", "security"], keywords="=cmd()")
    make_subscriber("b@example.org")
    response = admin_client.post(
        "/admin/newsletter/subscriber/", {"action": "export_csv", "_selected_action": [a.pk]}
    )
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("email,status,frequency,weekday,hour,timezone,topics,keywords,authors")
    assert len(lines) == 2 and lines[1].startswith("a@example.org,active,daily,,7,UTC,robotics; security,'=cmd(),,")


def test_subscribers_are_found_by_address_keyword_or_author_whatever_the_case_and_accents(admin_client):
    make_subscriber("zoe@example.org", authors="Zoë Ünal", keywords="Robótica")
    make_subscriber("other@example.org")

    def found(term):
        page = admin_client.get("/admin/newsletter/subscriber/", {"q": term}).content.decode()
        return {email for email in ["zoe@example.org", "other@example.org"] if f">{email}<" in page}

    assert found("ZOE@EXAMPLE") == found("zoë ünal") == found("UNAL") == found("robotica") == {"zoe@example.org"}


def test_a_subscriber_is_found_by_what_they_follow_since_their_last_save(admin_client):
    # Preferences and follows change the row with an UPDATE (never a save of a stale copy):
    # the search text must follow them all the same.
    from newsletter.services import subscriber_follow_authors, subscriber_follow_keyword

    subscriber = make_subscriber("zoe@example.org")
    subscriber_follow_authors(subscriber=subscriber, names=["Zoë Ünal"])
    subscriber_follow_keyword(subscriber=subscriber, keyword="Robótica")
    page = admin_client.get("/admin/newsletter/subscriber/", {"q": "unal"}).content.decode()
    assert ">zoe@example.org<" in page
    page = admin_client.get("/admin/newsletter/subscriber/", {"q": "ROBOTICA"}).content.decode()
    assert ">zoe@example.org<" in page
