"""Every report as a person sees it: rendered by headless Chromium at 1280 x 900.

No horizontal overflow, no broken image, the headline block inside the first screen (the
reports that have one: all but the ad hoc notebook), and no cell text cut off with an
ellipsis. Screenshots of the first screen and of the whole page go to ``reports/screenshots/``
(git-ignored) for a person to look at. Skipped, saying why, where Chromium is not installed
(``.ci/run`` installs it: ``apt-get install chromium``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from browser import HEIGHT, Browser, chromium
from notebook_helpers import ROOT, SAMPLE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (apt-get install "
                       "chromium; .ci/run does)"),
]  # fmt: skip

SCREENSHOTS = ROOT / "reports" / "screenshots"
REPORTS = ["logs-default", "logs-window", "ttl-default", "ttl-policies", "scheduled-default",
           "scheduled-weekly", "experiment-default", "experiment-file", "adhoc-default",
           "adhoc-csv"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    with Browser(SCREENSHOTS) as running:
        yield running


@pytest.fixture(scope="module")
def analyze_pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analyze")
    pages = {}
    for name, by in (("analyze-by-use-case", "useCase"), ("analyze-by-arm", "useCase,arm")):
        page = folder / f"{name}.html"
        subprocess.run(
            [sys.executable, "-m", "rbmtools", "analyze", "--events", str(SAMPLE / "events"),
             "--outbox", str(SAMPLE / "outbox.jsonl"), "--by", by, "--html", str(page),
             "--bootstrap", "50"], check=True, capture_output=True,
        )  # fmt: skip
        pages[name] = page
    return pages


def _check(page, headline: bool = True) -> None:
    name = page.path.name
    assert not page.overflows, (name, page.measure["scrollWidth"], page.measure["wide"])
    assert not page.measure["scrolled"], (name, page.measure["scrolled"])  # no table to scroll
    assert not page.broken_images, (name, page.broken_images)
    assert page.measure["images"] or not headline or "adhoc" in name, name
    assert not page.measure["cut"], (name, page.measure["cut"][:5])
    if headline:
        assert page.headline_in_first_screen, (name, page.measure["headline"], HEIGHT)
        text = page.measure["headlineText"]
        for label in ("best TTL", "revoke success", "p50 latency", "p90 latency",
                      "never delivered", "messages"):  # fmt: skip
            assert label in text, (name, label)


@pytest.mark.parametrize("key", REPORTS)
def test_notebook_reports_in_chromium(runs, browser, key):
    run = runs[key].check()
    page = browser.check(run.html, key)
    _check(page, headline=not key.startswith("adhoc"))


def test_demo_reports_in_chromium(runs, browser):
    run = runs["demo"].check()
    pages = sorted(run.output_dir.glob("demo-*/*.html"))
    assert len(pages) == 3
    for path in pages:
        _check(browser.check(path, f"demo-{path.stem.split('-')[0]}"))


def test_analyze_html_in_chromium(browser, analyze_pages):
    for name, path in analyze_pages.items():
        page = browser.check(path, name)
        _check(page)
        assert "Appendix: what was read" in page.text
        # the headline comes before every detail, the load report after all of them
        assert page.text.index("best TTL") < page.text.index("Revoke success")
        assert page.text.index("Daily trend") < page.text.index("Appendix: what was read")
