"""The editor's desk in a real browser, at a laptop's and a phone's width: notes kept, edited
as written and counted; what each page touched looks like (screenshots in /tmp/desk-*.png)."""

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from papers.models import Feature
from tests.conftest import make_paper

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WIDTHS = [1280, 375]


def overflows(page):
    return page.evaluate("document.documentElement.scrollWidth > window.innerWidth")


def logged_in(browser, server, width):
    User.objects.create_superuser("editor", "e@example.org", "pw")
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(server.url + "/admin/login/?next=/admin/")
    page.fill("input[name=username]", "editor")
    page.fill("input[name=password]", "pw")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#content")
    return page


@pytest.mark.parametrize("width", WIDTHS)
def test_a_note_survives_unfeature_is_edited_as_written_and_counted(browser, server, width):
    today = timezone.localdate()
    make_paper("Jamming attacks on IoT", upvotes=20, listed_on=today)
    page = logged_in(browser, server, width)
    page.goto(server.url + "/admin/newsletter/edition/today/")
    box = page.get_by_label("Note for Jamming attacks on IoT")
    box.fill("Read the <b>threat model</b> & slides")
    assert page.locator("#leaders .counter").inner_text() == "30 / 280"  # what readers see
    page.locator("#leaders tr", has_text="Jamming").get_by_role("button", name="Feature").click()
    page.locator("#featured li", has_text="Jamming").get_by_role("button", name="Unfeature").click()
    page.wait_for_selector("text=unfeatured from")
    page.locator("#leaders tr", has_text="Jamming").get_by_role("button", name="Feature").click()
    page.wait_for_selector("#featured .note b")
    assert page.locator("#featured .note").inner_text() == "Read the threat model & slides"

    box = page.get_by_label("Note for Jamming attacks on IoT")
    assert box.input_value() == "Read the <b>threat model</b> & slides"
    box.fill("Read the <b>threat model</b> & slides " + "y" * 260)
    assert page.locator("#featured .counter").inner_text() == "291 / 280"
    assert "over" in page.locator("#featured .counter").get_attribute("class")
    page.get_by_role("button", name="Save note").click()
    page.wait_for_selector("text=not saved: An editor's note may be at most 280 characters.")
    assert page.get_by_label("Note for Jamming attacks on IoT").input_value().endswith("y" * 260)
    assert not overflows(page)
    page.screenshot(path=f"/tmp/desk-today-note-{width}.png", full_page=True)
    assert "y" not in Feature.objects.get().note


@pytest.mark.parametrize("width", WIDTHS)
def test_suppress_asks_first_and_says_what_it_will_do(browser, server, width):
    from newsletter.models import Subscriber
    from tests.conftest import make_subscriber

    reader = make_subscriber("reader@example.org")
    page = logged_in(browser, server, width)
    page.goto(server.url + "/admin/newsletter/subscriber/")
    page.locator("#result_list input.action-select").check()
    page.select_option("select[name=action]", "suppress")
    page.get_by_role("button", name="Go").click()
    page.wait_for_selector("text=Suppress these addresses?")
    assert "Nothing is mailed to these addresses again" in page.locator(".consequence").inner_text()
    assert not overflows(page)
    page.screenshot(path=f"/tmp/desk-suppress-{width}.png", full_page=True)
    assert Subscriber.objects.get(pk=reader.pk).status == "active"
    page.get_by_role("button", name="Yes, go ahead").click()
    page.wait_for_selector("text=Suppressed 1 subscriber(s).")
    assert Subscriber.objects.get(pk=reader.pk).status == "suppressed"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_paper_search_ignores_case_and_accents(browser, server, width):
    make_paper("Alpha", authors=["María López"])
    make_paper("Beta", authors=["Alan Turing"])
    page = logged_in(browser, server, width)
    page.goto(server.url + "/admin/papers/paper/")
    page.fill("#searchbar", "LOPEZ")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector("text=1 result")
    assert page.locator("#result_list").inner_text().count("Alpha") == 1
    assert "Beta" not in page.locator("#result_list").inner_text()
    assert not overflows(page)
    page.screenshot(path=f"/tmp/desk-paper-search-{width}.png", full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_changes_read_in_words_and_are_undone_from_the_today_page_and_the_history(browser, server, width):
    today = timezone.localdate()
    jam = make_paper("Jamming attacks on IoT", upvotes=20, listed_on=today)
    make_paper("Robot arms that learn", upvotes=10, listed_on=today)
    page = logged_in(browser, server, width)
    page.goto(server.url + "/admin/newsletter/edition/today/")
    page.get_by_label("Note for Jamming attacks on IoT").fill("R&D <b>first</b>")
    page.locator("#leaders tr", has_text="Jamming").get_by_role("button", name="Feature").click()
    page.locator("#leaders tr", has_text="Robot arms").get_by_role("button", name="Feature").click()
    page.locator("#featured li", has_text="Robot arms").get_by_role("button", name="Up").click()
    page.wait_for_selector(f"#changes >> text=Reordered {today}: Robot arms that learn, Jamming attacks on IoT")
    assert not overflows(page)
    page.screenshot(path=f"/tmp/desk-today-changes-{width}.png", full_page=True)
    page.locator("#changes li", has_text="Reordered").get_by_role("button", name="Undo").click()
    page.wait_for_selector("text=Undone: Reordered")
    assert [f.paper.title for f in Feature.objects.filter(day=today)] == ["Jamming attacks on IoT", "Robot arms that learn"]

    page.goto(server.url + "/admin/")
    assert f"Featured “Jamming attacks on IoT” on {today} with the note “R&D first”" in page.locator("#recent-actions-module").inner_text()
    page.screenshot(path=f"/tmp/desk-recent-actions-{width}.png", full_page=True)
    page.goto(server.url + f"/admin/papers/paper/{jam.pk}/history/")
    assert not overflows(page)
    page.screenshot(path=f"/tmp/desk-history-{width}.png", full_page=True)
    page.locator("#change-history tr", has_text="Featured “Jamming").get_by_role("button", name="Undo").click()
    page.wait_for_selector("text=Undone: Featured “Jamming attacks on IoT”")
    assert not Feature.objects.filter(paper=jam).exists()


@pytest.mark.parametrize("width", WIDTHS)
def test_after_sending_the_today_page_warns_and_previews_the_copy_mailed(browser, server, width):
    from django.core.management import call_command

    from papers.services import paper_feature
    from tests.conftest import make_subscriber

    today = timezone.localdate()
    jam = make_paper("Jamming attacks on IoT", upvotes=20, listed_on=today)
    paper_feature(paper=jam, day=today, note="Pinned first")
    make_subscriber("reader@example.org")
    call_command("send_digests", date=today, stdout=open("/dev/null", "w"))
    page = logged_in(browser, server, width)
    page.goto(server.url + "/admin/newsletter/edition/today/")
    assert "has gone out: 1 reader got their copy." in page.locator(".went-out").inner_text()
    page.get_by_label("Note for Jamming attacks on IoT").fill("Changed later")
    page.get_by_role("button", name="Save note").click()
    page.get_by_label("Subscriber's e-mail address").fill("reader@example.org")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("text=The copy mailed to reader@example.org")
    assert "Pinned first" in page.frame_locator("iframe").locator("body").inner_text()
    assert not overflows(page)
    page.screenshot(path=f"/tmp/desk-today-mailed-{width}.png", full_page=True)
    page.get_by_role("link", name="See what they would get now").click()
    page.wait_for_selector("text=would get if sent now")
    # The edition's notes stay as it went out, for its later readers too: the change is for the next.
    assert "Pinned first" in page.frame_locator("iframe").locator("body").inner_text()
    assert "a changed note reaches the next edition" in page.locator(".went-out").inner_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_paper_and_subscriber_lists_fit_and_a_paper_is_edited_as_lists(browser, server, width):
    from papers.services import paper_feature
    from tests.conftest import make_subscriber

    long_title = "A rather long title about learning robot arms that grasp deformable objects in cluttered kitchens"
    paper = make_paper(long_title, upvotes=40, abstract="robot reinforcement learning quantization security agents graphs",
                       authors=["María López", "Alan Turing"], categories=["cs.RO", "cs.LG"])
    for days in range(3):
        paper_feature(paper=paper, day=timezone.localdate() - timezone.timedelta(days=days))
    make_subscriber("a.rather.long.address.of.a.reader@some-university.example.org", timezone="America/Argentina/Buenos_Aires",
                    keywords="robots")
    make_subscriber("paused@example.org", status="paused")
    page = logged_in(browser, server, width)
    for url, shot in [("/admin/papers/paper/", "papers"), ("/admin/newsletter/subscriber/", "subscribers")]:
        page.goto(server.url + url)
        assert not overflows(page)
        page.screenshot(path=f"/tmp/desk-{shot}-{width}.png", full_page=True)
        if width >= 1280:  # every column in sight beside the filters
            right = page.evaluate("document.querySelector('#result_list').getBoundingClientRect().right")
            assert right <= page.evaluate("document.querySelector('.results').getBoundingClientRect().right") + 1
    assert "no digest due" in page.locator("#result_list tr", has_text="paused@example.org").inner_text()
    page.goto(server.url + f"/admin/papers/paper/{paper.pk}/change/")
    assert page.locator("textarea[name=authors]").input_value() == "María López\nAlan Turing"
    assert page.locator("input[name=categories]").input_value() == "cs.RO cs.LG"
    assert not overflows(page)
    page.screenshot(path=f"/tmp/desk-paper-change-{width}.png", full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_edition_page_shows_its_progress_papers_and_links(browser, server, width):
    from django.core.management import call_command

    from newsletter.models import Edition
    from papers.services import paper_feature
    from tests.conftest import make_subscriber

    today = timezone.localdate()
    jam = make_paper("Jamming attacks on IoT", upvotes=20, listed_on=today)
    make_paper("A rather long title about learning robot arms that grasp deformable objects in kitchens", upvotes=9, listed_on=today)
    paper_feature(paper=jam, day=today, note="Pinned")
    make_subscriber("reader@example.org")
    call_command("send_digests", date=today, stdout=open("/dev/null", "w"))
    page = logged_in(browser, server, width)
    page.goto(server.url + f"/admin/newsletter/edition/{Edition.objects.get().pk}/change/")
    assert "Sent 1" in page.locator(".field-progress").inner_text()
    assert "Jamming attacks on IoT" in page.locator(".field-papers_offered").inner_text()
    assert not overflows(page)
    page.screenshot(path=f"/tmp/desk-edition-{width}.png", full_page=True)
    page.get_by_role("link", name="Sent 1").click()
    page.wait_for_selector("text=reader@example.org")
