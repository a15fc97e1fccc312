"""The repository explains itself: README and docs link only to files inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted(ROOT.glob("docs/*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(document: Path) -> list[str]:
    return [match.group(1) for match in LINK.finditer(document.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_inside_the_repository(document: Path):
    for target in links(document):
        if re.match(r"^[a-z]+://|^mailto:|^#", target):
            continue
        resolved = (document.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{target} leaves the repository"
        assert resolved.exists(), f"{target} does not exist"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_document_sends_readers_to_the_teams_shared_folder(document: Path):
    text = document.read_text(encoding="utf-8")
    assert not re.search(r"\.\./shared|shared/[A-Z_]+\.md|\bDESIGN(\.md)? §", text)
