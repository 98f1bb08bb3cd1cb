import datetime as dt


class IsoDateConverter:
    """YYYY-MM-DD in a URL, as a date; an impossible date (2024-02-31) is a 404."""

    regex = r"\d{4}-\d{2}-\d{2}"

    def to_python(self, value):
        return dt.date.fromisoformat(value)  # ValueError means "no match"

    def to_url(self, value):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
