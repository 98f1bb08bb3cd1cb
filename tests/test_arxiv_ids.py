import pytest
from django.core.exceptions import ValidationError

from papers.arxiv_ids import normalize_arxiv_id, validate_arxiv_id


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("2403.09611", "2403.09611"),
        ("2403.09611v3", "2403.09611"),
        ("0704.0001", "0704.0001"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("hep-th/9901001v2", "hep-th/9901001"),
        ("math.GT/0309136", "math.GT/0309136"),
        ("arXiv:2403.09611v1", "2403.09611"),
        ("http://arxiv.org/abs/2403.09611v1", "2403.09611"),
        ("https://arxiv.org/pdf/2403.09611.pdf", "2403.09611"),
        (" 2403.09611 ", "2403.09611"),
    ],
)
def test_it_accepts_new_and_old_style_identifiers(raw, canonical):
    assert normalize_arxiv_id(raw) == canonical


@pytest.mark.parametrize("raw", ["", "2403.961", "24030.09611", "hep-th/990100", "HEP-TH/9901001", "2403.09611v", "../etc/passwd", "2403.09611<script>"])
def test_it_rejects_what_is_not_an_identifier(raw):
    with pytest.raises(ValidationError):
        normalize_arxiv_id(raw)


def test_the_model_validator_wants_the_canonical_form():
    validate_arxiv_id("2403.09611")
    with pytest.raises(ValidationError):
        validate_arxiv_id("2403.09611v2")
