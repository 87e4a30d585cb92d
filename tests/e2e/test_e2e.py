"""End to end in a real browser: Playwright drives Debian's Chromium against
`streamlit run app.py` on a free port. Import → browse → decide → export.

Screenshots of every page go to test-artifacts/screenshots/ (git-ignored)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from curation.store import open_store
from curation.store.queries import SampleFilter, query_samples
from tests.e2e.browser import SCREENSHOTS, click_row, go, needs_chromium, screenshot, serve, settle
from tests.helpers import ADMIN, sample_records, write_jsonl

pytestmark = needs_chromium


def upload(page, path: Path) -> None:
    """Choose a file in the uploader and wait until the server has it."""
    page.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_test_id("stFileUploader").get_by_text(path.name).wait_for()
    settle(page)


def press_shortcut(page, key: str, button: str) -> None:
    """Press a button's keyboard shortcut. Keys typed into the table go to the table,
    so first bring the button into view and put the focus on the page itself."""
    page.get_by_role("button", name=button).scroll_into_view_if_needed()
    page.get_by_role("heading").first.click()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)


def test_import_browse_decide_export(page, app_server, tmp_path):
    base, store_url = app_server
    engine = open_store(store_url)
    good = write_jsonl(tmp_path / "candidates.jsonl", sample_records(30))
    bad = write_jsonl(
        tmp_path / "broken.jsonl", [*sample_records(2), {"family": "math", "prompt": "p", "response": 3}]
    )

    page.goto(base)
    settle(page)
    page.get_by_label("Reviewer name", exact=True).fill("ada")
    page.get_by_label("Reviewer name", exact=True).press("Enter")
    settle(page)
    screenshot(page, "01-overview-empty")

    go(page, "Import")
    upload(page, bad)
    page.get_by_label("Batch name", exact=True).fill("broken")
    page.get_by_role("button", name="Import").click()
    page.get_by_text("line 3, field 'response': expected a string").wait_for()
    screenshot(page, "02-import-error")

    upload(page, good)
    page.get_by_label("Batch name", exact=True).fill("candidates")
    page.get_by_role("button", name="Import").click()
    page.get_by_role("link", name="Browse the samples").wait_for()
    settle(page)
    screenshot(page, "03-import-done")

    go(page, "Samples")
    page.get_by_text("30 samples · page 1 of 1").wait_for()
    click_row(page, 0)
    page.get_by_role("heading", name="Sample").first.wait_for()
    settle(page)
    screenshot(page, "04-sample-open")
    rows, _ = query_samples(engine, SampleFilter())
    first = rows[0].id
    page.get_by_role("heading", name=f"Sample {first}").wait_for()
    press_shortcut(page, "a", "Accept")
    page.get_by_test_id("stMetricValue").filter(has_text="accept").wait_for()
    settle(page)
    assert query_samples(engine, SampleFilter(decisions=["accept"]))[1] == 1

    click_row(page, 1)
    page.get_by_role("heading", name=f"Sample {rows[1].id}").wait_for()
    page.get_by_role("button", name="Reject").click()
    page.get_by_test_id("stMetricValue").filter(has_text="reject").wait_for()
    settle(page)
    screenshot(page, "05-samples-decided")

    go(page, "Export")
    out_dir = tmp_path / "export"
    page.get_by_label("Output folder", exact=True).fill(str(out_dir))
    page.get_by_role("button", name="Export").click()
    page.get_by_text("Wrote 1 row to").wait_for()
    settle(page)
    screenshot(page, "06-export")
    rows_out = [json.loads(line) for line in (out_dir / "data.jsonl").read_text().splitlines()]
    assert [row["provenance"]["sample_id"] for row in rows_out] == [first]
    assert rows_out[0]["provenance"]["decision"]["reviewer"] == "ada"

    go(page, "Jobs")
    page.get_by_test_id("stDataFrame").first.wait_for()
    screenshot(page, "07-jobs")
    go(page, "Overview")
    screenshot(page, "08-overview")


def test_model_output_is_never_rendered_as_html(page, app_server, tmp_path):
    """A response carrying HTML and a remote image shows as text; no request leaves."""
    base, store_url = app_server
    engine = open_store(store_url)
    hostile = '<img src="http://127.0.0.1:9/x.png" onerror="document.title=\'pwned\'"><b id="evil">bold</b> ![t](http://127.0.0.1:9/y.png)'
    write_jsonl(tmp_path / "h.jsonl", [{"family": "open", "prompt": "Say hi", "response": hostile}])
    from curation.io.importer import import_file

    import_file(engine, ADMIN, tmp_path / "h.jsonl", "hostile")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(base + "/samples")
    settle(page)
    click_row(page, 0)
    page.get_by_text("Render as markdown").wait_for()
    page.get_by_text("Render as markdown").click()
    settle(page)
    assert page.locator("#evil").count() == 0
    assert page.title() != "pwned"
    assert not [url for url in requests if "127.0.0.1:9" in url]
    screenshot(page, "09-hostile-response")


@pytest.fixture
def demo_server(make_store_url, tmp_path) -> Iterator[str]:
    """The app on the demo workspace (reference sets, simulated batches, verdicts)."""
    from curation.demo import ensure_demo_workspace

    store_url = make_store_url("sqlite")
    ensure_demo_workspace(open_store(store_url), ADMIN)
    with serve(store_url, tmp_path) as base:
        yield base


def test_every_page_of_the_demo_workspace_renders(demo_server, browser_page):
    """Visit every page in the navigation; none shows an exception. Screenshots each."""
    page = browser_page
    page.goto(demo_server)
    settle(page)
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    titles = [links.nth(i).inner_text().strip().split("\n")[-1] for i in range(links.count())]
    assert {"Overview", "Import", "Samples", "Export", "Jobs"} <= set(titles)
    for number, title in enumerate(titles, start=1):
        go(page, title)
        page.wait_for_timeout(500)
        settle(page)
        assert page.get_by_test_id("stException").count() == 0, f"{title} shows an exception"
        screenshot(page, f"demo-{number:02d}-{title.lower().replace(' ', '-')}")


def test_a_deep_link_opened_first_on_a_fresh_server_goes_through_the_router(page, app_server):
    """Streamlit's old `pages/` mode must not take over: the sidebar and navigation of app.py show."""
    base, _ = app_server
    page.goto(base + "/jobs")
    settle(page)
    page.get_by_role("heading", name="Jobs").wait_for()
    assert page.get_by_label("Reviewer name", exact=True).count() == 1
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    titles = [links.nth(i).inner_text().strip().split("\n")[-1] for i in range(links.count())]
    assert "Overview" in titles and "common" not in titles


@pytest.fixture(autouse=True, scope="module")
def _fresh_screenshots() -> None:
    """Screenshots of this run only (the folder is git-ignored)."""
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
