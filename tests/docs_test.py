"""README is a front page that points into docs/: every relative link there resolves, README stays
short, and each page its table of contents names exists."""

import re
from pathlib import Path

import pytest

from support import REPO

README_MAX_LINES = 250
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(markdown: str) -> list[str]:
    """The target of every markdown link and image outside code, in order."""
    prose = INLINE_CODE.sub("", FENCE.sub("", markdown))
    return LINK.findall(prose)


def relative_path(target: str) -> str | None:
    """The path part of a link to a file of this repository; None for a URL or a pure #anchor."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
        return None  # http(s), mailto and other schemes; an anchor on the same page
    return target.split("#", 1)[0].split("?", 1)[0]


def broken_links(page: Path) -> list[str]:
    """Each link of `page` to a file or folder that does not exist, resolved from its folder."""
    return [
        target
        for target in links(page.read_text())
        if (path := relative_path(target)) is not None and not (page.parent / path).exists()
    ]


def test_the_link_finder_sees_links_and_skips_code():
    text = (
        "[a](docs/x.md#part) ![b](img.png) [c](https://e.org) [d](#here) [e](mailto:x@y.z)\n"
        '`[not](inline.md)`\n```\n[not](fenced.md)\n```\n[f](<dir/> "title")\n'
    )
    assert links(text) == [
        "docs/x.md#part",
        "img.png",
        "https://e.org",
        "#here",
        "mailto:x@y.z",
        "dir/",
    ]
    assert [relative_path(t) for t in links(text)] == [
        "docs/x.md",
        "img.png",
        None,
        None,
        None,
        "dir/",
    ]


def test_a_broken_link_is_reported(tmp_path):
    (tmp_path / "there.md").write_text("here")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#x) [gone](missing.md) [dir](.)")
    assert broken_links(page) == ["missing.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_the_pages_are_linked_together():
    # a link finder that found nothing would pass every page above
    relative = [t for page in PAGES for t in links(page.read_text()) if relative_path(t)]
    assert len(relative) >= 30


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_readme_table_of_contents_names_existing_pages():
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Documentation\n", 1)[1].split("\n## ", 1)[0]
    pages = [relative_path(t) for t in links(section)]
    assert len(pages) >= 5 and all(p and p.startswith("docs/") for p in pages), pages
    missing = [p for p in pages if not (REPO / p).is_file()]
    assert missing == []
    # every page in docs/ is reachable from the front page
    assert {Path(p).name for p in pages} >= {p.name for p in PAGES[1:]}
