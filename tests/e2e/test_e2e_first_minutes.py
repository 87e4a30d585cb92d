"""The first ten minutes in the browser (issue 16): what a new reviewer trips over.
Review opens on a queue with work; the name box lets go of the focus and survives a
reload; a 200k-character line does not freeze the tab; bidi controls are visible;
Export's defaults; no request leaves the app's host; the Overview table fits."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from playwright.sync_api import expect

from curation.io.importer import import_file
from curation.store import open_store
from curation.testing.review_batches import ReviewRow, insert_review_batch
from tests.e2e.browser import click_row, enter_reviewer, go, needs_chromium, screenshot, settle
from tests.helpers import ADMIN, sample_records, write_jsonl

pytestmark = needs_chromium

PASS = [("checker", True, "correct"), ("judge", True, "looks right")]
FAIL = [("checker", False, "wrong final answer"), ("judge", False, "wrong")]
#: One line of 200,000 characters (the interchange format's largest field) of
#: unclosed tags with an open attribute quote, as broken model output has: the markdown
#: renderer's worst case found (Streamlit 1.67 without the fix: one task of about 14 s,
#: where prose with stray emphasis markers costs about 0.2 s).
LONG_LINE = ('<a <b x="' * 25_000)[:200_000]
#: Every long task the page ran (durations in ms), collected from the first script on.
LONG_TASK_OBSERVER = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({type: "longtask", buffered: true});
"""
#: A correctness bound on the UI (the issue's target), not a benchmark: the unfixed page
#: blocks the main thread for seconds on a switch to markdown (5.4 s on Samples, 13.7 s on
#: Review for `LONG_LINE`, the least of three loads); the fixed one stays under 120 ms,
#: code view included, at a load average of 7 on 2 cores.
#: `markdown_block_ms` keeps the least of up to three fresh loads, so a one-off spike of
#: the loaded machine does not fail the test while a real freeze still does.
MAX_BLOCK_MS = 200
#: True once the long response shows in its markdown-mode form: rendered as markdown (a
#: markdown block holding most of the line) or the fix's plain-text fallback note.
RESPONSE_SWITCHED = """() =>
  document.body.innerText.includes("too long to render as markdown") ||
  [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')].some(
    (element) => element.textContent.length > 100000)
"""


def review_rows(verdicts: list, count: int, response: str = "yes") -> list[ReviewRow]:
    return [
        ReviewRow(prompt=f"Is {i} small? Answer yes or no.", response=response, verdicts=verdicts)
        for i in range(count)
    ]


def wait_for_sample(page, sample_id: int, timeout: float = 60_000) -> None:
    page.get_by_role("heading", name=f"Sample {sample_id}", exact=True).wait_for(timeout=timeout)
    settle(page)


def test_review_opens_on_the_first_queue_with_work_and_offers_the_next(page, app_server):
    base, store_url = app_server
    _, ids = insert_review_batch(
        open_store(store_url), "agreed", [*review_rows(PASS, 3), *review_rows(FAIL, 1)]
    )
    page.goto(base + "/review")
    settle(page)
    enter_reviewer(page, "ada")
    # No disagreement and nothing uncertain: the failures are where the work is.
    wait_for_sample(page, ids[3], timeout=15_000)
    picker = page.get_by_test_id("stSelectbox").filter(has=page.get_by_label("Queue"))
    assert "Failures only (1)" in picker.text_content() + picker.get_by_label("Queue").input_value()
    page.get_by_role("button", name="Reject").click()
    settle(page)
    page.get_by_text("Nothing left for ada in this queue.").wait_for()
    page.get_by_role("button", name="Go to All undecided (3)").click()
    wait_for_sample(page, ids[0])
    assert "All undecided (3)" in picker.text_content() + picker.get_by_label("Queue").input_value()
    screenshot(page, "16-1-review-next-queue")


def test_a_confirmed_name_lets_go_of_the_focus_and_survives_reload_and_deep_links(page, app_server):
    base, store_url = app_server
    _, ids = insert_review_batch(open_store(store_url), "names", review_rows(PASS, 3))
    page.goto(base + "/review")
    settle(page)
    page.get_by_label("Queue").click()
    page.get_by_role("option", name="All undecided").click()
    settle(page)
    enter_reviewer(page, "ada")
    wait_for_sample(page, ids[0], timeout=15_000)
    page.keyboard.press("n")  # no click elsewhere first: where the focus was left matters
    wait_for_sample(page, ids[1], timeout=15_000)
    assert page.evaluate("document.activeElement.tagName") != "INPUT"

    page.reload()
    settle(page)
    page.get_by_text("Reviewing as ada").wait_for(timeout=15_000)
    go(page, "Samples")
    page.get_by_text("Reviewing as ada").wait_for(timeout=15_000)

    page.goto(base + "/review?reviewer=bob")
    settle(page)
    page.get_by_text("Reviewing as bob").wait_for(timeout=15_000)
    wait_for_sample(page, ids[0], timeout=15_000)  # the card needs a name: the link gave it
    screenshot(page, "16-2-reviewer-name")


def markdown_block_ms(page, open_sample, attempts: int = 3) -> float:
    """The longest main-thread task (ms) while the response switches to markdown and the
    app settles, on a fresh load of the page (`open_sample` loads it and opens the
    sample). Up to `attempts` fresh loads, keeping the least: a one-off spike of the
    loaded machine does not count, while a real freeze shows on every fresh load (a
    second switch on the same page can reuse the first render)."""
    longest = []
    for _ in range(attempts):
        open_sample()
        page.evaluate("window.__longTasks = []")
        page.get_by_text("Render as markdown", exact=True).click()
        # Wait for the response's new form (rendered markdown, or the plain-text fallback),
        # not just for the script: the browser may render after the run has ended.
        page.wait_for_function(RESPONSE_SWITCHED, timeout=120_000)
        settle(page)
        page.wait_for_timeout(1000)
        longest.append(max(page.evaluate("window.__longTasks"), default=0.0))
        if longest[-1] < MAX_BLOCK_MS:
            break
    return min(longest)


def test_a_200k_character_line_does_not_freeze_the_tab_in_markdown_mode(page, app_server):
    base, store_url = app_server
    _, ids = insert_review_batch(
        open_store(store_url), "long", [ReviewRow("Write a lot.", LONG_LINE, "open", PASS)]
    )
    page.add_init_script(LONG_TASK_OBSERVER)

    def open_in_review() -> None:
        page.goto(base + "/review")
        settle(page)
        enter_reviewer(page, "ada")
        page.get_by_label("Queue").click()
        page.get_by_role("option", name="All undecided").click()
        wait_for_sample(page, ids[0])

    def open_in_samples() -> None:
        page.goto(base + "/samples")
        settle(page)
        click_row(page, 0)
        wait_for_sample(page, ids[0])

    blocked = {
        "review": markdown_block_ms(page, open_in_review),
        "samples": markdown_block_ms(page, open_in_samples),
    }
    screenshot(page, "16-3-long-line")
    assert max(blocked.values()) < MAX_BLOCK_MS, blocked


def test_bidi_controls_show_as_code_points(page, app_server):
    base, store_url = app_server
    insert_review_batch(
        open_store(store_url),
        "bidi",
        [ReviewRow("Name \u2066the\u2069 file.", "RTL \u202egnp.exe\u202c", "open", PASS)],
    )
    page.goto(base + "/review?reviewer=ada")
    settle(page)
    page.get_by_label("Queue").click()
    page.get_by_role("option", name="All undecided").click()
    settle(page)
    page.get_by_text("RTL ⟨U+202E⟩gnp.exe⟨U+202C⟩").wait_for(timeout=15_000)
    page.get_by_text("Name ⟨U+2066⟩the⟨U+2069⟩ file.").wait_for()
    page.get_by_text("Render as markdown", exact=True).click()
    settle(page)
    page.get_by_text("RTL ⟨U+202E⟩gnp.exe⟨U+202C⟩").wait_for()
    screenshot(page, "16-4-bidi")


def open_export_with_nothing_accepted(page, app_server, tmp_path) -> None:
    """Export on a workspace of 5 real rows, 3 undecided synthetic samples and no eval set."""
    base, store_url = app_server
    engine = open_store(store_url)
    import_file(engine, ADMIN, write_jsonl(tmp_path / "real.jsonl", sample_records(5)), "human", origin="real")
    insert_review_batch(engine, "undecided", review_rows(PASS, 3))
    page.goto(base + "/export")
    settle(page)


def test_export_defaults_to_a_folder_under_the_workspace(page, app_server, tmp_path):
    open_export_with_nothing_accepted(page, app_server, tmp_path)
    # Retried until it holds: the box may be read while the page is still filling it in.
    expect(page.get_by_label("Output folder", exact=True)).to_have_value(
        re.compile("^" + re.escape(str(tmp_path.resolve() / "exports")) + "/export-"), timeout=15_000
    )


def test_export_without_an_eval_set_links_to_import(page, app_server, tmp_path):
    open_export_with_nothing_accepted(page, app_server, tmp_path)
    link = page.get_by_role("link", name="Add an evaluation set on Import")
    link.wait_for(timeout=15_000)
    assert link.get_attribute("href").rstrip("/").endswith("import")


def test_export_asks_before_an_all_real_dataset(page, app_server, tmp_path):
    open_export_with_nothing_accepted(page, app_server, tmp_path)
    page.get_by_text("the dataset would be 100 % real data").wait_for(timeout=15_000)
    export = page.get_by_role("button", name="Export", exact=True)
    assert export.is_disabled()
    page.get_by_text("Export it anyway, with real data only").click()
    settle(page)
    assert export.is_enabled()
    export.click()
    page.get_by_text("Wrote 5 rows").wait_for()
    [data] = (tmp_path.resolve() / "exports").glob("export-*/data.jsonl")
    assert len([json.loads(line) for line in data.read_text().splitlines()]) == 5
    screenshot(page, "16-5-export-defaults")


def test_no_page_load_requests_anything_from_another_host(page, app_server, tmp_path):
    base, store_url = app_server
    engine = open_store(store_url)
    import_file(engine, ADMIN, write_jsonl(tmp_path / "real.jsonl", sample_records(5)), "human", origin="real")
    insert_review_batch(engine, "batch", [*review_rows(PASS, 2), *review_rows(FAIL, 2)])
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(base)
    settle(page)
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    paths = [urlsplit(links.nth(i).get_attribute("href")).path for i in range(links.count())]
    assert len(paths) >= 9
    for path in paths:
        page.goto(base + path)  # a full load, favicon included
        settle(page)
        page.wait_for_timeout(500)
    own = urlsplit(base).netloc
    outside = sorted(
        {
            url
            for url in requests
            if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).netloc != own
        }
    )
    assert not outside
    assert len(requests) > len(paths)


def test_the_overview_batch_table_fits_at_1500_px(page, app_server, tmp_path):
    base, store_url = app_server
    engine = open_store(store_url)
    import_file(
        engine, ADMIN,
        write_jsonl(tmp_path / "real-reference-rows.jsonl", sample_records(5)),
        "human-written-reference",
        origin="real",
    )
    insert_review_batch(engine, "a-synthetic-batch-with-a-long-name", review_rows(PASS, 3))
    page.goto(base)
    settle(page)
    grid = page.get_by_test_id("stDataFrame").first
    grid.wait_for()
    box = grid.bounding_box()
    assert box["x"] + box["width"] <= page.viewport_size["width"]
    # The table is drawn on a canvas: its columns fit when its scroller has nothing to scroll.
    scroller = grid.locator(".dvn-scroller").first
    widths = scroller.evaluate("element => [element.scrollWidth, element.clientWidth]")
    assert widths[0] <= widths[1], f"the columns need {widths[0]} px, the table shows {widths[1]} px"
    screenshot(page, "16-7-overview")
