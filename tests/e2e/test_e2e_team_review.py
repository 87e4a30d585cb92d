"""End to end in a real browser on a PostgreSQL store: a team reviews a blind batch.

Two reviewers and an admin sign in as local accounts, each in a browser context of
their own. The admin assigns the batch's spot-check to both reviewers with overlap 2
(Reviewers tab). The reviewers work it from the keyboard; neither page ever carries a
verdict (every verdict reason holds a canary string), in the page source, the URL or
any message the server sent down the websocket. The admin then sees the reviewers'
kappa and each one's pace. A viewer's attempt to decide, run a bulk action or export is
refused in the UI and, for the same acts, in the library.
"""

from __future__ import annotations

import re

import pytest

from curation.auth import Actor, PermissionDenied, Role, add_user
from curation.export.config import ExportConfig
from curation.export.run import run_export
from curation.review.agreement import reviewer_agreement
from curation.review.bulk import bulk_accept_passed
from curation.review.decisions import record_decision
from curation.review.queues import draw_spot_check
from curation.review.reviewers import reviewer_metrics
from curation.store import open_store, session_scope
from curation.store.models import Assignment, Decision, Export
from tests.blind import CANARY, DECISION_CANARY, make_blind_batch
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, go, needs_chromium, screenshot, serve, settle

pytestmark = needs_chromium

PASSWORDS = {
    "ann": "ann-password-1",
    "rita": "rita-password-1",
    "rob": "rob-password-1",
    "vic": "vic-password-1",
}
ADMIN = Actor("ann", Role.ADMIN)
VIEWER = Actor("vic", Role.VIEWER)
#: Six samples the verifiers passed (the spot-check pool) and two they failed, one of
#: them decided by "bob" with a canary note.
KINDS = ["pass"] * 6 + ["fail"] * 2
#: What each reviewer presses, in the order the spot-check serves its samples.
KEYS = {"rita": "aaaxax", "rob": "aaxxaa"}
SAMPLE_HEADING = re.compile(r"^Sample \d+$")


OPEN: list[Session] = []


class Session:
    """One person's browser context, with every websocket message the server sent it."""

    def __init__(self, browser, base: str, name: str) -> None:
        OPEN.append(self)
        self.name = name
        self.context = browser.new_context(viewport={"width": 1500, "height": 1000})
        self.context.set_default_timeout(60_000)
        self.page = self.context.new_page()
        self.frames: list[bytes] = []
        self.page.on(
            "websocket",
            lambda socket: socket.on(
                "framereceived",
                lambda data: self.frames.append(data if isinstance(data, bytes) else data.encode()),
            ),
        )
        self.page.goto(base)
        settle(self.page)
        self.page.get_by_label("Name", exact=True).fill(name)
        self.page.get_by_label("Password", exact=True).fill(PASSWORDS[name])
        self.page.get_by_role("button", name="Sign in", exact=True).click()
        self.page.get_by_test_id("stSidebar").get_by_text("Signed in as", exact=False).wait_for()
        settle(self.page)

    def open_review(self) -> None:
        go(self.page, "Review")
        batch = self.page.get_by_label("Batch", exact=True)
        batch.click()
        self.page.get_by_role("option", name="blind batch").click()
        settle(self.page)

    def assert_no_verdicts(self, where: str) -> None:
        content = self.page.content()
        received = b"".join(self.frames)
        for canary in (CANARY, DECISION_CANARY):
            assert canary not in content, f"{canary} in {self.name}'s page on {where}"
            assert canary not in self.page.url, f"{canary} in {self.name}'s URL on {where}"
            assert canary.encode() not in received, f"{canary} sent to {self.name} on {where}"

    def press(self, key: str) -> None:
        self.page.evaluate("document.activeElement && document.activeElement.blur()")
        self.page.locator("body").press(key)

    def current_sample(self) -> str | None:
        heading = self.page.get_by_role("heading", name=SAMPLE_HEADING)
        return heading.first.inner_text().strip() if heading.count() else None


def work_the_spot_check(person: Session, keys: str) -> list[int]:
    """Decide the spot-check from the keyboard, one key per sample; the ids served."""
    served: list[int] = []
    page = person.page
    page.get_by_role("heading", name=SAMPLE_HEADING).first.wait_for()
    assert "spot-check" in page.get_by_label("Queue", exact=True).input_value().lower()
    for key in keys:
        shown = person.current_sample()
        assert shown is not None, f"{person.name}'s queue ran out after {served}"
        served.append(int(shown.split()[1]))
        person.assert_no_verdicts(f"sample {shown}")
        person.press(key)
        page.wait_for_function(
            "shown => !Array.from(document.querySelectorAll('h3')).some(h => h.innerText.trim() === shown)",
            arg=shown,
        )
        settle(page)
    page.get_by_text(f"Nothing left for {person.name} in this queue.").wait_for()
    person.assert_no_verdicts("the end of the queue")
    return served


@pytest.fixture
def team_store(make_store_url):
    url = make_store_url("postgresql")
    engine = open_store(url)
    add_user(engine, None, "ann", Role.ADMIN, password=PASSWORDS["ann"])
    for name, role in (("rita", Role.REVIEWER), ("rob", Role.REVIEWER), ("vic", Role.VIEWER)):
        add_user(engine, ADMIN, name, role, password=PASSWORDS[name])
    batch_id, ids = make_blind_batch(engine, kinds=KINDS, others_decide=(7,))
    draw_spot_check(engine, ADMIN, batch_id, 6)
    return url, engine, batch_id, ids


@pytest.fixture
def team_app(request, team_store, tmp_path):
    """The real app on the team's store with sign-in on, and a Chromium to open contexts
    in: (base URL, browser). On a failure every open context leaves a screenshot."""
    from playwright.sync_api import sync_playwright

    url = team_store[0]
    with serve(url, tmp_path, env={"ASSAY_AUTH": None}) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield base, browser
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                for person in OPEN:
                    screenshot(person.page, f"FAILED-team-{person.name}")
        finally:
            OPEN.clear()
            browser.close()


def test_a_team_reviews_a_blind_overlap_two_spot_check(team_store, team_app):
    url, engine, batch_id, ids = team_store
    base, browser = team_app
    admin = Session(browser, base, "ann")
    admin.open_review()
    admin.page.get_by_role("tab", name="Reviewers", exact=True).click()
    settle(admin.page)
    admin.page.get_by_text("Assign the spot-check (overlap)", exact=True).click()
    admin.page.get_by_placeholder("ada, bob, cy", exact=True).fill("rita, rob")
    admin.page.get_by_label("Reviewers per sample (k)", exact=True).fill("2")
    admin.page.get_by_label("Reviewers per sample (k)", exact=True).press("Enter")
    settle(admin.page)
    admin.page.get_by_role("button", name="Assign the spot-check", exact=True).click()
    admin.page.get_by_text(
        "Assigned the spot-check with overlap 2: 12 claims (rita 6, rob 6).", exact=True
    ).wait_for()
    with session_scope(engine) as session:
        claims = session.query(Assignment.sample_id, Assignment.reviewer).filter(
            Assignment.reviewer.in_(["rita", "rob"])
        )
        given: dict[int, set[str]] = {}
        for sample_id, reviewer in claims:
            given.setdefault(sample_id, set()).add(reviewer)
    assert len(given) == 6 and all(who == {"rita", "rob"} for who in given.values())

    reviewers = {name: Session(browser, base, name) for name in KEYS}
    served = {}
    for name, person in reviewers.items():
        person.open_review()
        assert person.page.get_by_text("blind batch: verdicts hidden until you decide").count()
        served[name] = work_the_spot_check(person, KEYS[name])
        screenshot(person.page, f"team-{name}-done")
    # Each pool sample went to both reviewers, and neither saw one twice.
    assert sorted(served["rita"]) == sorted(served["rob"]) == sorted(given)
    with session_scope(engine) as session:
        decided = session.query(Decision.sample_id, Decision.reviewer, Decision.action).filter(
            Decision.reviewer.in_(["rita", "rob"])
        )
        by_reviewer = {(r, s): a for s, r, a in decided}
    for name, keys in KEYS.items():
        expected = ["accept" if key == "a" else "reject" for key in keys]
        assert [by_reviewer[(name, s)] for s in served[name]] == expected
    for person in reviewers.values():
        for tab in ("Acceptance", "Reviewers", "Bulk actions"):
            person.page.get_by_role("tab", name=tab, exact=True).click()
            settle(person.page)
            person.assert_no_verdicts(f"the {tab} tab")
        go(person.page, "Samples")
        person.assert_no_verdicts("Samples")

    kappa = reviewer_agreement(engine, batch_id).kappa
    metrics = {m.reviewer: m for m in reviewer_metrics(engine, batch_id).reviewers}
    go(admin.page, "Overview")
    admin.open_review()
    admin.page.get_by_role("tab", name="Reviewers", exact=True).click()
    settle(admin.page)
    kappa_metric = admin.page.get_by_test_id("stMetric").filter(has_text="kappa")
    assert f"{kappa:.3f}" in kappa_metric.inner_text()
    pace_line = admin.page.get_by_text(
        "Pace (median seconds per decision, idle gaps left out):", exact=False
    ).inner_text()
    for name in KEYS:
        assert f"{name} {metrics[name].pace_seconds:.1f} s" in pace_line
    screenshot(admin.page, "team-admin-reviewers")


def test_a_viewer_is_refused_deciding_bulk_actions_and_export(team_store, team_app, tmp_path):
    url, engine, batch_id, ids = team_store
    base, browser = team_app
    viewer = Session(browser, base, "vic")
    viewer.open_review()
    page = viewer.page
    page.get_by_text("Your role (viewer) may not decide samples; ask an admin.").first.wait_for()
    assert page.get_by_role("button", name=re.compile("Accept(?!ance)")).first.is_disabled()
    shown = viewer.current_sample()
    viewer.press("a")
    settle(page)
    assert viewer.current_sample() == shown
    page.get_by_role("tab", name="Bulk actions", exact=True).click()
    settle(page)
    page.get_by_text("Your role (viewer) may not run bulk actions; ask an admin.").first.wait_for()
    go(page, "Export")
    page.get_by_text("Your role (viewer) may not export", exact=False).first.wait_for()
    viewer.assert_no_verdicts("the viewer's pages")
    with session_scope(engine) as session:
        assert session.query(Decision).filter(Decision.reviewer == "vic").count() == 0
    # The library refuses the same acts, before anything changes.
    with pytest.raises(PermissionDenied, match="viewer 'vic' may not decide samples"):
        record_decision(engine, VIEWER, ids[0], "accept")
    with pytest.raises(PermissionDenied, match="may not run bulk actions"):
        bulk_accept_passed(engine, VIEWER, batch_id, max_error=0.5, confidence=0.8)
    with pytest.raises(PermissionDenied, match="may not export"):
        run_export(engine, VIEWER, ExportConfig(out=str(tmp_path / "out")))
    with session_scope(engine) as session:
        assert session.query(Decision).filter(Decision.reviewer == "vic").count() == 0
        assert session.query(Export).count() == 0
