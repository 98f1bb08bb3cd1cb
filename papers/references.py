"""Reading a reader's list of papers: pasted arXiv ids or URLs, a BibTeX file, a RIS or a
Zotero CSV export. Each gives References (the line it starts on, an arXiv id if one is
found, the title); anything unreadable raises BadReferences naming the line.

BibTeX goes through bibtexparser (braces, @string, comments and quoting are easy to get
wrong); RIS and CSV are line formats that the standard library reads with line numbers.
"""

import csv
import io
import re
from dataclasses import dataclass

import bibtexparser
from django.core.exceptions import ValidationError

from papers.arxiv_ids import normalize_arxiv_id

MAX_REFERENCES = 300
MAX_FILE_BYTES = 2 * 1024 * 1024

_ID = r"(\d{4}\.\d{4,5}(?:v\d+)?|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?)"
# Where an entry names its arXiv id: a URL, the arXiv DOI, "arXiv:ID" in a journal or note.
_IN_TEXT = re.compile(
    rf"arxiv\.org/(?:abs|pdf)/{_ID}|10\.48550/arxiv\.{_ID}|arxiv(?:\s+preprint)?[:\s]\s*(?:arxiv:)?{_ID}", re.IGNORECASE
)
_BIBTEX = re.compile(r"^\s*@\w+\s*[{(]", re.MULTILINE)
_RIS_TAG = re.compile(r"^([A-Z][A-Z0-9])  -(?: (.*))?$")
# BibTeX and RIS fields, Zotero CSV columns (lower case) where an arXiv id may be written.
ID_FIELDS = ("eprint", "arxivid", "arxiv", "url", "doi", "journal", "journaltitle", "note", "howpublished",
             "extra", "ur", "l1", "l2", "do", "jo", "jf", "t2", "n1", "m1", "publication title", "archive location")


class BadReferences(ValueError):
    """The list cannot be read; the message names the line."""


@dataclass(frozen=True)
class Reference:
    line: int
    arxiv_id: str | None
    title: str = ""

    def __str__(self):
        return self.arxiv_id or f"“{self.title}”"


def arxiv_id_in(values):
    """The arXiv id the first of `values` that names one gives, or None."""
    for value in values:
        value = (value or "").strip()
        try:
            return normalize_arxiv_id(value)
        except ValidationError:
            pass
        match = _IN_TEXT.search(value)
        if match:
            return normalize_arxiv_id(next(g for g in match.groups() if g))
    return None


def _clean_title(title):
    return re.sub(r"\s+", " ", re.sub(r"[{}]", "", title or "")).strip()[:500]


def _reference(line, fields):
    """A Reference from {lower-case field name: value}; None if it has neither id nor title."""
    title = _clean_title(fields.get("title") or fields.get("ti") or fields.get("t1") or "")
    arxiv_id = arxiv_id_in(fields.get(name, "") for name in ID_FIELDS)
    return Reference(line, arxiv_id, title) if arxiv_id or title else None


def parse_pasted(text):
    """arXiv ids or URLs, separated by spaces, commas or new lines."""
    references = []
    for number, line in enumerate(text.splitlines(), start=1):
        for token in re.split(r"[\s,;]+", line.strip()):
            if token:
                try:
                    references.append(Reference(number, normalize_arxiv_id(token)))
                except ValidationError as e:
                    raise BadReferences(f"line {number}: {e.messages[0]}") from None
    return _limited(references)


def parse_bibtex(text):
    library = bibtexparser.parse_string(text)
    if library.failed_blocks:
        block = library.failed_blocks[0]  # bibtexparser counts lines from 0
        why = getattr(block.error, "abort_reason", "") or "an unclosed brace or a missing comma?"
        raise BadReferences(f"line {block.start_line + 1}: this BibTeX entry cannot be read: {why.strip()}")
    references = []
    for entry in library.entries:
        fields = {key.lower(): str(value) for key, value in ((f.key, f.value) for f in entry.fields)}
        reference = _reference(entry.start_line + 1, fields)
        if reference is None:
            raise BadReferences(f"line {entry.start_line + 1}: entry “{entry.key}” has neither a title nor an arXiv id")
        references.append(reference)
    return _limited(references)


def parse_ris(text):
    references, fields, start = [], None, 0
    for number, line in enumerate(text.splitlines(), start=1):
        match = _RIS_TAG.match(line.rstrip())
        if match:
            tag, value = match[1].lower(), (match[2] or "").strip()
            if tag == "ty":
                fields, start = {}, number
            elif fields is None:
                raise BadReferences(f"line {number}: a {match[1]} tag outside a record (records start with “TY  - ”)")
            elif tag == "er":
                reference = _reference(start, fields)
                if reference is None:
                    raise BadReferences(f"line {start}: this record has neither a title (TI) nor an arXiv id")
                references.append(reference)
                fields = None
            else:
                fields.setdefault(tag, value)  # the first of a repeated tag (UR, L1) is the paper's own
        elif line.strip() and fields is None:
            raise BadReferences(f"line {number}: not a RIS line (“XX  - value”): {line.strip()[:60]!r}")
        # Inside a record, other lines continue the tag before them (wrapped abstracts).
    if fields is not None:
        raise BadReferences(f"line {start}: this record has no end (“ER  - ”)")
    return _limited(references)


def parse_zotero_csv(text):
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = {name.strip().lower() for name in reader.fieldnames or ()}
    if "title" not in header:
        raise BadReferences("line 1: a Zotero CSV export starts with a header naming its columns, “Title” among them")
    references = []
    try:
        for row in reader:
            if None in row:  # more cells than the header has columns
                raise BadReferences(f"line {reader.line_num}: more cells than the header has columns")
            reference = _reference(reader.line_num, {(k or "").strip().lower(): v or "" for k, v in row.items()})
            if reference is not None:
                references.append(reference)
    except csv.Error as e:
        raise BadReferences(f"line {reader.line_num}: {e}") from None
    return _limited(references)


def parse_file(data):
    """The references in an uploaded file, whose format is told from its content."""
    if len(data) > MAX_FILE_BYTES:
        raise BadReferences(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BadReferences(f"line {line}: not UTF-8 text (export the file as UTF-8)") from None
    if _BIBTEX.search(text):
        return parse_bibtex(text)
    if re.search(r"^TY  -", text, re.MULTILINE):
        return parse_ris(text)
    first = next(csv.reader(text.splitlines()[:1]), [])
    if "title" in {cell.strip().lower() for cell in first}:
        return parse_zotero_csv(text)
    raise BadReferences("line 1: not a BibTeX, RIS or Zotero CSV file")


def _limited(references):
    if len(references) > MAX_REFERENCES:
        raise BadReferences(f"at most {MAX_REFERENCES} papers at a time; this has {len(references)}")
    return references
