"""End to end in a real browser: review a queue with the keyboard only (a accept,
x reject, s skip, u undo) and find every decision in the store. Uses the app
server and browser fixtures of tests/e2e/conftest.py."""

from __future__ import annotations

from pathlib import Path

from curation.review.decisions import current_decision
from curation.store import open_store
from curation.store.queries import get_sample
from curation.testing.review_batches import ReviewRow, insert_review_batch
from tests.e2e.browser import go, needs_chromium, screenshot, settle

pytestmark = needs_chromium

DISAGREE = [("checker", False, "wrong final answer"), ("judge", True, "looks right")]
PASS = [("checker", True, "correct"), ("judge", True, "looks right")]


def wait_for_sample(page, sample_id: int) -> None:  # noqa: F811 - the fixture's value
    page.get_by_role("heading", name=f"Sample {sample_id}", exact=True).wait_for()
    settle(page)


def press(page, key: str) -> None:  # noqa: F811
    """A key press with the focus on the page body, never in an input."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.locator("body").press(key)


def test_review_a_queue_with_the_keyboard(page, app_server):  # noqa: F811
    base, store_url = app_server
    engine = open_store(store_url)
    rows = [
        ReviewRow(
            prompt=f"Is {i} even? Answer yes or no.",
            response=("yes" if i % 2 == 0 else "no")
            + f" — {i} mod 2 = {i % 2}\n\n```python\nprint({i} % 2)\n```",
            family="math",
            verdicts=DISAGREE if i < 6 else PASS,
            reference={"answer": "yes" if i % 2 == 0 else "no"},
        )
        for i in range(12)
    ]
    _, ids = insert_review_batch(engine, "keyboard", rows)

    page.goto(base)
    settle(page)
    page.get_by_label("Reviewer name", exact=True).fill("ada")
    page.get_by_label("Reviewer name", exact=True).press("Enter")
    settle(page)
    go(page, "Review")
    wait_for_sample(page, ids[0])

    press(page, "a")
    wait_for_sample(page, ids[1])
    press(page, "x")
    wait_for_sample(page, ids[2])
    press(page, "s")
    wait_for_sample(page, ids[3])
    press(page, "u")  # undo the skip: sample 2 comes back
    wait_for_sample(page, ids[2])
    assert current_decision(engine, ids[2]) is None
    press(page, "a")
    wait_for_sample(page, ids[3])
    press(page, "x")
    wait_for_sample(page, ids[4])
    screenshot(page, "10-review")

    assert [current_decision(engine, sample_id) for sample_id in ids[:5]] == [
        "accept",
        "reject",
        "accept",
        "reject",
        None,
    ]
    history = get_sample(engine, ids[2]).history
    assert [(h["reviewer"], h["action"]) for h in history] == [
        ("ada", "skip"),
        ("ada", "clear"),
        ("ada", "accept"),
    ]

    # Export what was accepted, then load it with pandas and datasets; provenance resolves back.
    out_dir = Path(engine.url.database).parent / "review-export"
    go(page, "Export")
    page.get_by_label("Output folder", exact=True).fill(str(out_dir))
    page.get_by_label("Output folder", exact=True).press("Enter")
    settle(page)
    page.get_by_role("button", name="Export", exact=True).click()
    page.get_by_text("Wrote 2 rows").wait_for()
    screenshot(page, "11-review-export")

    import datasets
    import pandas as pd

    [data_file] = out_dir.glob("*.jsonl")
    frame = pd.read_json(data_file, lines=True)
    loaded = datasets.load_dataset("json", data_files=str(data_file), split="train")
    assert len(frame) == len(loaded) == 2
    for row in loaded:
        provenance = row["provenance"]
        sample = get_sample(engine, provenance["sample_id"])
        assert sample.content_hash == provenance["content_hash"]
        assert sample.decision == "accept" == provenance["decision"]["action"]
        assert provenance["decision"]["reviewer"] == "ada"
