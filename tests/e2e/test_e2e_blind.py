"""End to end in a real browser: a reviewer on a blind batch never receives a verdict.
Every verdict reason of the batch and another reviewer's note carry a canary string;
the served page (`page.content()`), the URL and every page the reviewer can open
(Overview, Samples, Review with its tabs, Verify, Diversity, Export) must be free of it,
before and after the reviewer decides a sample from the keyboard; so must every
message the server sent down the websocket (tables are drawn on a canvas, so their
data is only there). The open batch's verdicts do reach the browser: the control
that the search finds what is sent.

The reviewer signs in through the local sign-in form as a reviewer account."""

from __future__ import annotations

from curation.auth import AUTH_ENV, Role, add_user
from curation.review.decisions import current_decision
from curation.store import open_store
from curation.store.db import session_scope
from curation.store.models import Batch
from curation.testing.review_batches import insert_review_batch
from tests.blind import ADMIN, CANARY, DECISION_CANARY, REVIEWER, blind_rows, make_blind_batch
from tests.e2e.browser import go, needs_chromium, screenshot, serve, settle

pytestmark = needs_chromium

PASSWORD = "rita-password-1"
PAGES = ["Overview", "Samples", "Review", "Verify", "Diversity", "Export"]


def assert_no_canary(page, where: str) -> None:
    content = page.content()
    for canary in (CANARY, DECISION_CANARY):
        assert canary not in content, f"{canary} in the page on {where}"
        assert canary not in page.url, f"{canary} in the URL on {where}"


def sign_in(page) -> None:
    page.get_by_label("Name", exact=True).fill(REVIEWER.name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {REVIEWER.name} (reviewer)").wait_for()
    settle(page)


def press(page, key: str) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.locator("body").press(key)


def test_a_reviewer_never_receives_a_blind_verdict(browser_page, make_store_url, tmp_path):
    page = browser_page
    store_url = make_store_url("sqlite")
    engine = open_store(store_url)
    add_user(engine, None, ADMIN.name, Role.ADMIN, password="ann-password-1")
    add_user(engine, ADMIN, REVIEWER.name, Role.REVIEWER, password=PASSWORD)
    reference, _ = insert_review_batch(engine, "reference", blind_rows(canary="reference"))
    with session_scope(engine) as session:
        session.get(Batch, reference).origin = "real"
    make_blind_batch(engine, name="open batch", blind=False, canary="open-verdict", others_decide=())
    batch_id, ids = make_blind_batch(engine)

    with serve(store_url, tmp_path, env={AUTH_ENV: None}) as base:  # sign-in on
        frames: list[bytes] = []
        page.on(
            "websocket",
            lambda socket: socket.on(
                "framereceived",
                lambda data: frames.append(data if isinstance(data, bytes) else data.encode()),
            ),
        )
        page.goto(base)
        settle(page)
        sign_in(page)
        assert_no_canary(page, "sign-in")

        go(page, "Review")
        page.get_by_role("heading", name=f"Sample {ids[0]}", exact=True).wait_for()
        settle(page)
        assert page.get_by_text("Read the whole answer").count()
        assert page.get_by_text("blind batch: verdicts hidden until you decide").count()
        assert_no_canary(page, "Review")
        screenshot(page, "blind-review")
        press(page, "a")
        page.get_by_role("heading", name=f"Sample {ids[1]}", exact=True).wait_for()
        settle(page)
        assert current_decision(engine, ids[0]) == "accept"
        assert_no_canary(page, "Review after a decision")
        for tab in ["Acceptance", "Reviewers", "Bulk actions"]:
            page.get_by_role("tab", name=tab, exact=True).click()
            settle(page)
            assert_no_canary(page, f"Review, {tab}")

        page.get_by_role("tab", name="Review", exact=True).click()
        settle(page)
        for title in PAGES:
            go(page, title)
            assert_no_canary(page, title)

        # The control: an open batch's verdicts reach the same reviewer, in the page and down the socket.
        go(page, "Review")
        page.get_by_label("Batch", exact=True).click()
        page.get_by_role("option", name="open batch").click()
        settle(page)
        assert "open-verdict" in page.content()
        assert b"open-verdict" in b"".join(frames)
        # Every message of the blind pages has arrived by now (the control's came after them);
        # the open batch carries no canary, so the whole conversation must be free of it.
        received = b"".join(frames)
        assert CANARY.encode() not in received and DECISION_CANARY.encode() not in received
