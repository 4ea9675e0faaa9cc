"""What the tests share: the checkout's root (REPO), the Snakemake runner and finished runs
(workflow.py, runs.py), the config builder (configs.py), the hand-written reference forward
(manual_forward.py), the browser (browser.py), hand-made tables and fabricated stage outputs."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def docs_text() -> str:
    """Every page of the documentation site (docs/*.md), one after another: where the tests find
    what the docs state (the pages are built by ``make docs``)."""
    return "\n".join(page.read_text() for page in sorted(DOCS.glob("*.md")))


def docs_section(page: str, heading: str) -> str:
    """The text of ``## heading`` on ``docs/<page>``, up to the next ``## ``."""
    return (DOCS / page).read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
