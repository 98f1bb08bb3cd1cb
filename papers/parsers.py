"""Readers for the paper feed formats described in docs/formats.md.

Each parser takes the raw bytes of a feed and yields Parsed items in feed order: either a
PaperRecord or the reason that one record could not be read. A feed that cannot be read at
all (not JSON, not XML) raises FeedError with a one-line message.
"""

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from lxml import etree

from papers.arxiv_ids import normalize_arxiv_id

FORMATS = ("json", "atom", "text")
MAX_TITLE = 500


class FeedError(Exception):
    pass


@dataclass
class PaperRecord:
    title: str
    arxiv_id: str | None = None
    authors: list = field(default_factory=list)
    abstract: str = ""
    categories: list = field(default_factory=list)
    published_on: dt.date | None = None
    listed_on: dt.date | None = None
    upvotes: int | None = None
    pdf_link: str = ""


@dataclass
class Parsed:
    position: int
    record: PaperRecord | None = None
    error: str = ""
    ref: str = ""  # the record's identifier as found, to name a rejected record


def detect_format(data):
    head = data.lstrip()[:1]
    if head in (b"[", b"{"):
        return "json"
    if head == b"<":
        return "atom"
    return "text"


def parse(data, fmt=None):
    fmt = fmt or detect_format(data)
    return {"json": parse_daily_json, "atom": parse_arxiv_atom, "text": parse_text}[fmt](data)


def _squash(text):
    return re.sub(r"\s+", " ", text or "").strip()


def _date(value):
    """The calendar date of an ISO 8601 timestamp or date, or None."""
    if not value:
        return None
    return dt.date.fromisoformat(str(value)[:10])


def _check_title(title):
    if not title:
        raise ValueError("missing 'title'")
    if len(title) > MAX_TITLE:
        raise ValueError(f"title longer than {MAX_TITLE} characters")
    return title


# 1. Daily-papers JSON


def parse_daily_json(data):
    try:
        items = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FeedError(f"not valid JSON: {e}") from None
    if not isinstance(items, list):
        raise FeedError("expected a JSON array of listed papers")
    for position, item in enumerate(items, start=1):
        try:
            yield Parsed(position, record=_daily_record(item))
        except (ValueError, TypeError, ValidationError) as e:
            paper = item.get("paper") if isinstance(item, dict) else None
            ref = str(paper.get("id") or "") if isinstance(paper, dict) else ""
            yield Parsed(position, error=_reason(e), ref=ref[:60])


def _reason(error):
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)


def _daily_record(item):
    if not isinstance(item, dict):
        raise ValueError("not a JSON object")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise ValueError("missing 'paper'")
    if not paper.get("id"):
        raise ValueError("missing 'id'")
    upvotes = paper.get("upvotes", 0)
    if not isinstance(upvotes, int) or isinstance(upvotes, bool) or upvotes < 0:
        raise ValueError(f"'upvotes' must be a whole number >= 0, got {upvotes!r}")
    authors = paper.get("authors") or []
    if not isinstance(authors, list):
        raise ValueError("'authors' must be a list")
    return PaperRecord(
        arxiv_id=normalize_arxiv_id(str(paper["id"])),
        title=_check_title(_squash(paper.get("title") or item.get("title"))),
        authors=[_squash(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")],
        abstract=_squash(paper.get("summary") or item.get("summary")),
        published_on=_date(paper.get("publishedAt")),
        listed_on=_date(item.get("publishedAt")),
        upvotes=upvotes,
    )


# 2. arXiv API Atom

NS = {"a": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom"}
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def parse_arxiv_atom(data):
    try:
        root = etree.fromstring(data, parser=_XML_PARSER)
    except etree.XMLSyntaxError as e:
        raise FeedError(f"not valid XML: {e}") from None
    if root.tag != f"{{{NS['a']}}}feed":
        raise FeedError(f"expected an Atom <feed>, got <{etree.QName(root).localname}>")
    for position, entry in enumerate(root.iterfind("a:entry", NS), start=1):
        try:
            yield Parsed(position, record=_atom_record(entry))
        except (ValueError, ValidationError) as e:
            ref = _squash(entry.findtext("a:id", default="", namespaces=NS)).rsplit("/abs/", 1)[-1]
            yield Parsed(position, error=_reason(e), ref=ref[:60])


def _atom_record(entry):
    def text(path):
        return _squash(entry.findtext(path, default="", namespaces=NS))

    raw_id = text("a:id")
    if not raw_id:
        raise ValueError("missing <id>")
    if "/api/errors" in raw_id:
        raise ValueError(f"arXiv reported an error: {text('a:summary')}")
    primary = entry.find("arxiv:primary_category", NS)
    categories = [primary.get("term")] if primary is not None and primary.get("term") else []
    for category in entry.iterfind("a:category", NS):
        term = category.get("term")
        if term and term not in categories:
            categories.append(term)
    pdf = next((link.get("href", "") for link in entry.iterfind("a:link", NS) if link.get("title") == "pdf"), "")
    return PaperRecord(
        arxiv_id=normalize_arxiv_id(raw_id),
        title=_check_title(text("a:title")),
        authors=[_squash(n) for n in entry.xpath("a:author/a:name/text()", namespaces=NS) if _squash(n)],
        abstract=text("a:summary"),
        categories=categories,
        published_on=_date(text("a:published")),
        pdf_link=pdf.replace("http://", "https://", 1),
    )


# 3. Plain-text listing

_DATE_FORMATS = ("%b %d", "%B %d", "%b %d, %Y", "%B %d, %Y", "%Y-%m-%d")


def _listing_date(paragraph, today):
    for fmt in _DATE_FORMATS:
        try:
            parsed = dt.datetime.strptime(paragraph, fmt).date()
        except ValueError:
            continue
        if "%Y" in fmt:
            return parsed
        # No year: the latest such day that is not in the future.
        candidate = parsed.replace(year=today.year)
        return candidate if candidate <= today else candidate.replace(year=today.year - 1)
    return None


def _is_abstract(paragraph):
    return len(paragraph) > 250 or (len(paragraph) > 100 and paragraph.endswith("."))


def parse_text(data, listed_on=None, today=None):
    """Titles are short paragraphs each followed by a long one, its abstract.

    Paragraphs before the first title are header lines; a date among them ("Mar 14") is
    the listing day unless listed_on is given.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FeedError(f"not UTF-8 text: {e}") from None
    paragraphs = [_squash(p) for p in re.split(r"\n\s*\n", text) if p.strip()]
    today = today or dt.date.today()
    seen_paper = False
    position = 0
    i = 0
    while i < len(paragraphs):
        paragraph = paragraphs[i]
        following = paragraphs[i + 1] if i + 1 < len(paragraphs) else None
        if not _is_abstract(paragraph) and following is not None and _is_abstract(following):
            seen_paper = True
            position += 1
            try:
                record = PaperRecord(title=_check_title(paragraph), abstract=following, listed_on=listed_on)
                yield Parsed(position, record=record)
            except ValueError as e:
                yield Parsed(position, error=str(e))
            i += 2
            continue
        if not seen_paper:
            listed_on = listed_on or _listing_date(paragraph, today)
        else:
            position += 1
            kind = "abstract without a title" if _is_abstract(paragraph) else "title without an abstract"
            yield Parsed(position, error=f"{kind}: {paragraph[:60]!r}")
        i += 1
