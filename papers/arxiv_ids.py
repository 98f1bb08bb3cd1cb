"""arXiv identifiers: validation and normalisation.

New style: 2403.09611 (four-digit yymm, four or five digits). Old style: hep-th/9901001
(archive, optional subject class, yymm + three digits). A version suffix (v2) is not part of
a paper's identity and is stripped.
"""

import re

from django.core.exceptions import ValidationError

_NEW = r"\d{4}\.\d{4,5}"
_OLD = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
_ID = re.compile(rf"^(?P<id>{_NEW}|{_OLD})(?:v\d+)?$")
_PREFIXES = re.compile(r"^(?:https?://(?:export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:)", re.IGNORECASE)


def normalize_arxiv_id(value):
    """Return the canonical identifier for value, or raise ValidationError."""
    raw = (value or "").strip()
    candidate = _PREFIXES.sub("", raw).removesuffix(".pdf")
    match = _ID.match(candidate)
    if not match:
        raise ValidationError(f"{raw!r} is not an arXiv identifier (e.g. 2403.09611 or hep-th/9901001)")
    return match["id"]


def validate_arxiv_id(value):
    if normalize_arxiv_id(value) != value:
        raise ValidationError(f"{value!r} is not in canonical form (no prefix, no version suffix)")
