"""Every relative link in README.md and docs/*.md leads somewhere: to a file or folder of the checkout,
and, where it names a heading of a Markdown page, to a heading that page has.

Links inside code (fenced blocks and `spans`) are text, not links, and are not checked; web addresses
are not fetched.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def pages(root: Path = ROOT) -> list[Path]:
    """The front page and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def prose(markdown: str) -> str:
    """The text with fenced code blocks and code spans taken out."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor in a page; a repeated heading gets -1, -2 … as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of `page` that leads to no file, or to a heading its page lacks."""
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if SCHEME.match(target):
            continue
        path_part, _, anchor = unquote(target).partition("#")
        base = root if path_part.startswith("/") else page.parent
        dest = (base / path_part.lstrip("/")).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            broken.append(f"{page.name}: {target} (no heading #{anchor} in {dest.name})")
    return broken


def test_every_relative_link_in_the_readme_and_docs_resolves():
    broken = [line for page in pages() for line in broken_links(page)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_docs_pages_are_checked_too():
    names = {page.name for page in pages()}
    assert "README.md" in names and len(names) > 1, f"only {sorted(names)}: docs/ has no pages"


def test_a_missing_file_and_a_missing_heading_are_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "suites").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Will it fit: `mlxbench fit`\n\n## A heading\n")
    page = tmp_path / "docs" / "a.md"
    page.write_text(
        "[gone](../suites/gone.yaml) [here](../suites/) [no anchor](b.md#nowhere)\n"
        "[ok](b.md#a-heading) [fit](b.md#will-it-fit-mlxbench-fit) [self](#title) [web](https://x.org/y)\n"
        "`[in a span](missing.md)`\n```\n[in a block](missing.md)\n```\n# Title\n")
    assert broken_links(page, root=tmp_path) == [
        "a.md: ../suites/gone.yaml (no such file)",
        "a.md: b.md#nowhere (no heading #nowhere in b.md)",
    ]


def test_a_repeated_heading_gets_a_numbered_anchor():
    assert anchors("# Figures\n## Notes\n## Notes\n") == {"figures", "notes", "notes-1"}


def test_the_anchor_drops_punctuation_as_github_does():
    assert slug("Across processes and Macs (`mlx.launch`)") == "across-processes-and-macs-mlxlaunch"
    assert slug("How close to the machine's limits") == "how-close-to-the-machines-limits"
