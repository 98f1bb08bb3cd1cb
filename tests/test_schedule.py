import datetime as dt

from newsletter.schedule import local_date, next_digest_time

UTC = dt.timezone.utc


def at(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else dt.datetime.fromisoformat(text)


def test_it_is_the_local_hour_in_the_subscribers_zone():
    after = at("2026-03-02T10:00:00")
    assert next_digest_time(after, tz="UTC", hour=7) == at("2026-03-03T07:00:00")
    assert next_digest_time(after, tz="Asia/Tokyo", hour=7) == at("2026-03-02T22:00:00")  # 07:00 JST on the 3rd
    assert next_digest_time(after, tz="America/New_York", hour=7) == at("2026-03-02T12:00:00")  # still today there


def test_later_today_if_the_hour_is_still_to_come():
    assert next_digest_time(at("2026-03-02T05:59:00"), tz="UTC", hour=6) == at("2026-03-02T06:00:00")
    assert next_digest_time(at("2026-03-02T06:00:00"), tz="UTC", hour=6) == at("2026-03-03T06:00:00")


def test_weekly_digests_go_on_the_chosen_weekday():
    monday = at("2026-03-02T10:00:00")
    assert next_digest_time(monday, tz="UTC", hour=7, weekday=4) == at("2026-03-06T07:00:00")
    assert next_digest_time(monday, tz="UTC", hour=7, weekday=0) == at("2026-03-09T07:00:00")


def test_daylight_saving_changes_move_utc_not_local_time():
    # Europe/Berlin: CET (UTC+1) until 29 March 2026, then CEST (UTC+2).
    before = next_digest_time(at("2026-03-27T12:00:00"), tz="Europe/Berlin", hour=7)
    after = next_digest_time(at("2026-03-29T12:00:00"), tz="Europe/Berlin", hour=7)
    assert before == at("2026-03-28T06:00:00") and after == at("2026-03-30T05:00:00")


def test_an_hour_skipped_by_the_clocks_still_sends_that_day():
    # 02:00 does not exist in Berlin on 29 March 2026.
    sent = next_digest_time(at("2026-03-28T12:00:00"), tz="Europe/Berlin", hour=2)
    assert local_date(sent, "Europe/Berlin") == dt.date(2026, 3, 29)
