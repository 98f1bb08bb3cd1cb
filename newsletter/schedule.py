"""When a subscriber's next digest goes: their local hour, in their own time zone."""

import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc


def next_digest_time(after, *, tz, hour, weekday=None):
    """The first moment strictly after `after` that is `hour`:00 local time in tz
    (on `weekday`, 0 = Monday, if given), as an aware UTC datetime.

    A local hour skipped by a daylight-saving jump is sent at the moment the clocks jump to.
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    local_day = after.astimezone(zone).date()
    for offset in range(9):
        day = local_day + dt.timedelta(days=offset)
        if weekday is not None and day.weekday() != weekday:
            continue
        moment = dt.datetime.combine(day, dt.time(hour), tzinfo=zone).astimezone(UTC)
        if moment > after:
            return moment
    raise AssertionError("unreachable: a matching day occurs within 8 days")


def local_date(moment, tz):
    return moment.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz).date()
