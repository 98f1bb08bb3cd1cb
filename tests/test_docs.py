"""The user's guide and the docs point at files this repository has."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_no_guide_points_outside_the_repository():
    for guide in GUIDES:
        assert not re.findall(r"[\w./]*\bshared/[\w./-]*", guide.read_text()), guide.name


def test_every_file_a_guide_names_in_code_exists():
    for guide in GUIDES:
        for path in re.findall(r"`((?:\.\./|docs/|sample/)[\w./-]+\.\w+)`", guide.read_text()):
            base = guide.parent if path.startswith("../") else ROOT
            assert (base / path).exists(), f"{guide.name}: {path}"
