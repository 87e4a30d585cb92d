"""Review: one sample at a time from a queue, decided from the keyboard; the
acceptance-sampling plan and bound; reviewers and agreement; bulk actions.

Every query and rule lives in curation.review; this page only lays it out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from curation.auth import Action, Actor, PermissionDenied, Role
from curation.io.writers.chat import conversation
from curation.review.agreement import reviewer_agreement
from curation.review.blind import NOTICE, hides, queue_kinds
from curation.review.bulk import (
    BoundNotMet,
    bulk_accept_passed,
    bulk_apply_decision,
    bulk_reject_failures,
    list_bulk_events,
    preview_accept_passed,
    preview_apply_decision,
    preview_reject_failures,
    rejectable_reasons,
    resume_bulk,
    undo_bulk,
)
from curation.review.context import neighbour_previews, review_card
from curation.review.decisions import record_decision, undo_last_decision
from curation.review.queues import (
    QUEUE_COUNT_CAP,
    QUEUE_LABELS,
    Queue,
    assign_round_robin,
    assign_spot_check,
    cluster_key,
    cluster_labels,
    draw_spot_check,
    first_queue_with_work,
    next_sample,
    queue_counts,
    queue_remaining,
    review_batches,
    spot_check,
    verifier_names,
)
from curation.review.reviewers import IDLE_SECONDS, ReviewerMetrics, reviewer_metrics
from curation.review.sampling import acceptance_summary, zero_failure_sample_size
from curation.review.settings import SettingsError, review_settings, set_review_settings
from curation.review.similar import NotEmbedded, SimilarSample, reviewer_decision, similar_samples
from curation.review.stats import family_slices, suggestions, verifier_scores, verifier_slices
from pages.common import (
    can,
    current_actor,
    engine,
    explain_refusal,
    page_header,
    permitted,
    require_reviewer,
    reviewer,
    show_json,
    show_untrusted,
    titled_table,
    why_not,
)

OUTCOME = {True: "pass", False: "fail", None: "—"}
VERDICT_ICON = {True: ":material/check:", False: ":material/close:", None: ":material/help:"}
CONFIDENCES = [0.8, 0.9, 0.95, 0.99]
#: Similar samples listed on the review card.
SIMILAR_K = 10
log = logging.getLogger(__name__)


page_header("Review", "One sample at a time: a accept · x reject · s skip · u undo · n next.")

eng = engine()
batches = review_batches(eng)
if not batches:
    st.info("No synthetic batches to review yet.", icon=":material/info:")
    st.page_link("pages/import_data.py", label="Import data", icon=":material/upload_file:")
    st.stop()

by_id = {b.id: b for b in batches}
controls = st.columns([3, 3, 2, 2], vertical_alignment="bottom")
batch_id = controls[0].selectbox(
    "Batch", list(by_id), format_func=lambda i: by_id[i].name, key="review_batch"
)
actor = current_actor()
settings = review_settings(eng, batch_id)
#: Blind review: this user may not see verdicts or others' decisions before deciding.
blind = hides(eng, actor, batch_id)
kinds = queue_kinds(eng, actor, batch_id)
counts = queue_counts(eng, batch_id, reviewer(), kinds, blind=blind)
if st.session_state.get("review_queue") not in kinds:
    st.session_state["review_queue"] = first_queue_with_work(counts) or kinds[0]


def _queue_label(kind: str, counts: dict[str, int | None]) -> str:
    """The queue's name with how many samples it holds for this reviewer, where known."""
    count = counts.get(kind)
    if count is None:
        return QUEUE_LABELS[kind]
    return f"{QUEUE_LABELS[kind]} ({count:,}{'+' if count > QUEUE_COUNT_CAP else ''})"


kind = controls[1].selectbox(
    "Queue", kinds, format_func=lambda k: _queue_label(k, counts), key="review_queue"
)


@st.cache_data(ttl=120, show_spinner=False)
def _cluster_options(url: str, batch_id: int, open_for: str | None) -> tuple[str | None, list[str]]:
    key = cluster_key(eng, batch_id)
    return key, [label for label, _ in cluster_labels(eng, batch_id, key, open_for=open_for)] if key else []


@st.cache_data(ttl=300, show_spinner=False)
def _verifier_names(url: str) -> list[str]:
    return verifier_names(eng)


queue = Queue(kind, batch_id, blind=blind) if kind != "cluster" else None
if kind == "cluster":
    key, labels = _cluster_options(str(eng.url), batch_id, reviewer() if blind else None)
    label = controls[2].selectbox("Cluster", labels, key="review_cluster")
    queue = Queue(kind, batch_id, cluster=label or "", cluster_key=key or "cluster", blind=blind)
elif kind == "failures":
    chosen = controls[2].selectbox(
        "Failed by",
        [None, *_verifier_names(str(eng.url))],
        key="review_verifier",
        format_func=lambda v: "any verifier" if v is None else v,
    )
    queue = Queue(kind, batch_id, verifier=chosen)
with controls[3].popover("Acceptance target", icon=":material/tune:", use_container_width=True):
    st.number_input(
        "Claimed error rate ≤ (%)",
        0.1,
        50.0,
        5.0,
        0.5,
        key="review_max_error_pct",
        help="Accept the verifier-passed set only if its error rate is at most this.",
    )
    st.select_slider(
        "Confidence", CONFIDENCES, value=0.95, key="review_confidence", format_func="{:.0%}".format
    )
max_error = st.session_state["review_max_error_pct"] / 100
confidence = st.session_state["review_confidence"]
assert queue is not None


def _flash(message: str) -> None:
    st.session_state["review_flash"] = message


def _queue_state(q: Queue, name: str) -> dict:
    """This session's place in a queue: the sample shown and the ones decided (for undo)."""
    queues = st.session_state.setdefault("review_queues", {})
    return queues.setdefault(f"{name}|{q.key}", {"current": None, "decided": []})


def _decide(q: Queue, name: str, sample_id: int, action: str) -> None:
    state = _queue_state(q, name)
    tags = st.session_state.get(f"review_tags_{sample_id}", [])
    note = st.session_state.get(f"review_note_{sample_id}", "")
    actor = current_actor()  # at click time: a session may have expired since the page was drawn
    if actor is None:
        _flash("Your session expired: sign in again to decide.")
        return
    record_decision(eng, actor, sample_id, action, reason_tags=tags, note=note)
    state["decided"].append(sample_id)
    state["current"] = next_sample(eng, actor, q, after=sample_id)
    _flash(f"Sample {sample_id}: {action}")


def _next(q: Queue, name: str, sample_id: int) -> None:
    _queue_state(q, name)["current"] = next_sample(eng, _reader(name), q, after=sample_id)


def _undo(q: Queue, name: str) -> None:
    state = _queue_state(q, name)
    if not state["decided"]:
        return
    actor = current_actor()
    if actor is None:
        _flash("Your session expired: sign in again to undo.")
        return
    undone = undo_last_decision(eng, actor, state["decided"].pop())
    if undone is None:
        _flash("Nothing to undo.")
        return
    state["current"] = undone[1]
    _flash(f"Undid your decision on sample {undone[1]}.")


def _show_verdicts(verdicts: list[dict]) -> None:
    if not verdicts:
        st.caption("Not verified yet.")
    for verdict in verdicts:
        title = (
            f"{verdict['verifier']} v{verdict['version']}: {verdict['reason'] or OUTCOME[verdict['passed']]}"
        )
        with st.expander(title, icon=VERDICT_ICON[verdict["passed"]]):
            if verdict["score"] is not None:
                st.caption(f"score {verdict['score']:.3g}")
            show_json(verdict["details"])


TRANSCRIPT_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


def _show_transcript(messages: list[dict[str, str]], *, markdown: bool) -> None:
    """A multi-turn sample as its conversation, turn by turn in order (each text rendered
    untrusted: plain, or markdown without HTML)."""
    st.markdown(f"**Conversation** ({sum(m['role'] == 'assistant' for m in messages)} turns)")
    turn = 0
    for message in messages:
        if message["role"] == "user":
            turn += 1
        label = TRANSCRIPT_ROLES.get(message["role"], "Other")
        st.markdown(f"**{label}**" + (f" · turn {turn}" if message["role"] != "system" else ""))
        show_untrusted(message["content"], markdown=markdown)


def _open_in_browser(sample_id: int) -> None:
    st.session_state["open_sample"] = sample_id


def _show_related(related: list, *, empty: str) -> None:
    if not related:
        st.caption(empty)
    for item in related:
        score = f" · {item.score:.3f}" if item.score is not None else ""
        where = f" · sample {item.sample_id} in {item.batch} ({item.origin})" if item.sample_id else ""
        overridden = f" · overridden by {item.overridden_by}" if item.overridden_by else ""
        with st.expander(f"{item.kind}{score}{where}{overridden}", icon=":material/content_copy:"):
            if item.reason:
                st.caption(item.reason)
            if item.sample_id:
                st.markdown("**Other prompt**")
                show_untrusted(item.prompt)
                st.markdown("**Other response**")
                show_untrusted(item.response)
                if st.button(
                    "Open it in Samples",
                    key=f"open_{item.kind}_{item.sample_id}",
                    icon=":material/open_in_new:",
                ):
                    _open_in_browser(item.sample_id)
                    st.switch_page("pages/samples.py")


def _show_neighbours(sample_id: int) -> None:
    """The neighbour lookup's failure is shown on the card and logged, never read as "none"."""
    try:
        neighbours = neighbour_previews(eng, sample_id)
    except Exception as exc:  # noqa: BLE001 - any failure: the rest of the card still shows
        log.exception("nearest neighbours of sample %s failed", sample_id)
        st.error(
            f"Nearest neighbours could not be loaded: {type(exc).__name__}: {exc}", icon=":material/error:"
        )
        return
    _show_related(neighbours, empty="No neighbours found.")


def _similar_table(similar: list[SimilarSample]) -> None:
    """Neighbours as a table: plain text cells (model output never renders as HTML)."""
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "sample": s.sample_id,
                    "similarity": round(s.similarity, 4),
                    "batch": s.batch,
                    "set": "reference" if s.is_reference else s.origin,
                    "decision": s.decision or "undecided",
                    "decided by": s.decided_by or "",
                    "prompt": s.prompt,
                }
                for s in similar
            ]
        ),
        hide_index=True,
    )


def _apply_similar(actor: Actor, source: int, decision: str, sample_ids: list[int]) -> None:
    result = bulk_apply_decision(
        eng, actor, sample_ids, decision, reason=f"like sample {source}", source_sample_id=source
    )
    st.session_state["similar_bulk"] = result.bulk_event_id
    _flash(f"Applied {decision} to {result.count} similar samples (bulk event {result.bulk_event_id}).")


def _undo_similar(actor: Actor, bulk_event_id: int) -> None:
    result = undo_bulk(eng, actor, bulk_event_id)
    st.session_state.pop("similar_bulk", None)
    _flash(f"Undid bulk event {bulk_event_id}: {result.count} samples undecided again.")


def _offer_apply(source: int, similar: list[SimilarSample], decision: str) -> None:
    """ "Apply my decision to these N": only for a role allowed bulk actions, confirmed first."""
    actor = current_actor()
    if actor is None or not actor.can(Action.BULK):
        st.caption("Applying a decision to many samples at once is a bulk action, for admins.")
        return
    open_ids = preview_apply_decision(eng, [s.sample_id for s in similar])
    if not open_ids:
        st.caption("Every similar sample is decided already.")
        return
    confirmed = st.checkbox(
        f"{decision.capitalize()} these {len(open_ids)} undecided similar samples as one bulk action "
        "(undoable)",
        key=f"similar_confirm_{source}",
    )
    st.button(
        f"Apply my decision to these {len(open_ids)}",
        key=f"similar_apply_{source}",
        icon=":material/done_all:",
        disabled=not confirmed,
        on_click=_apply_similar,
        args=(actor, source, decision, open_ids),
    )


def _similar_of(sample_id: int) -> list[SimilarSample] | None:
    """The similar samples, or None after saying why there are none to show."""
    try:
        return similar_samples(eng, sample_id, k=SIMILAR_K, actor=current_actor())
    except NotEmbedded as exc:
        st.info(str(exc), icon=":material/info:")
    except Exception as exc:  # noqa: BLE001 - any failure: the rest of the card still shows
        log.exception("similar samples of sample %s failed", sample_id)
        st.error(f"Similar samples could not be loaded: {type(exc).__name__}: {exc}", icon=":material/error:")
    return None


def _similar_section(q: Queue, name: str, sample_id: int) -> None:
    """Nearest neighbours across every batch and reference set, with their decisions, and
    the bulk action applying the reviewer's decision to them. A queue moves on once a
    sample is decided, so the action is also offered for the sample decided last."""
    similar = _similar_of(sample_id)
    if similar is not None:
        if similar:
            _similar_table(similar)
        else:
            st.caption("No other sample has a cached embedding.")
    mine = reviewer_decision(eng, sample_id, name)
    if similar and mine in ("accept", "reject"):
        _offer_apply(sample_id, similar, mine)
    decided = _queue_state(q, name)["decided"]
    last = decided[-1] if decided else None
    last_decision = reviewer_decision(eng, last, name) if last is not None else None
    if last is not None and last != sample_id and last_decision in ("accept", "reject"):
        st.markdown(f"**Similar to sample {last}, which you decided: {last_decision}**")
        previous = _similar_of(last)
        if previous:
            _similar_table(previous)
            _offer_apply(last, previous, last_decision)
    elif mine is None:
        st.caption("Decide this sample to apply your decision to its similar samples.")
    bulk_id = st.session_state.get("similar_bulk")
    actor = current_actor()
    if bulk_id is not None and actor is not None and actor.can(Action.BULK):
        st.button(
            f"Undo bulk event {bulk_id}",
            key="similar_undo",
            icon=":material/undo:",
            on_click=_undo_similar,
            args=(actor, bulk_id),
        )


def _live_bound(batch_id: int) -> None:
    summary = acceptance_summary(eng, batch_id, max_error, confidence, with_population=False)
    if not summary.pool:
        return
    verdict = "holds" if summary.holds else f"{summary.remaining} more to read"
    st.progress(
        min(1.0, summary.reviewed / max(1, summary.required)),
        text=f"Spot-check: {summary.reviewed} of {summary.required} read · {summary.failures} rejected · "
        f"upper bound {summary.upper_bound:.2%} (target ≤ {max_error:.1%} at {confidence:.0%}) · {verdict}",
    )


def _bar_button(
    column: Any,
    label: str,
    icon: str,
    shortcut: str,
    on_click: Callable[..., None],
    args: tuple[object, ...],
    disabled: bool,
    help_text: str | None = None,
) -> None:
    """One button of the decision bar (key `review_<label>`; Accept is the primary one)."""
    column.button(
        label,
        type="primary" if label == "Accept" else "secondary",
        icon=f":material/{icon}:",
        key=f"review_{label.lower()}",
        shortcut=shortcut,
        disabled=disabled,
        on_click=on_click,
        args=args,
        width="stretch",
        help=help_text,
    )


def _reader(name: str) -> Actor:
    """Who reads the queue: the acting user, or (not signed in) a viewer under `name`."""
    return current_actor() or Actor(name, Role.VIEWER)


def _decision_bar(q: Queue, name: str, sample_id: int | None) -> None:
    locked = why_not(Action.DECIDE)
    if locked:
        st.caption(locked)
    disabled = sample_id is None or locked is not None
    spot = q.kind == "spot-check"
    accept, reject, skip, undo, following = st.columns(5)
    _bar_button(accept, "Accept", "check", "a", _decide, (q, name, sample_id, "accept"), disabled)
    _bar_button(reject, "Reject", "close", "x", _decide, (q, name, sample_id, "reject"), disabled)
    skip_help = "Recorded: the sample leaves the queue without a verdict."
    _bar_button(skip, "Skip", "skip_next", "s", _decide, (q, name, sample_id, "skip"), disabled, skip_help)
    undo_help = "Undo your last decision in this queue (appends an event)."
    nothing_to_undo = not _queue_state(q, name)["decided"] or locked is not None
    _bar_button(undo, "Undo", "undo", "u", _undo, (q, name), nothing_to_undo, undo_help)
    next_help = (
        "Random spot-check samples are read in order (skip records a skip)."
        if spot
        else "Leave it for later."
    )
    _bar_button(
        following, "Next", "arrow_forward", "n", _next, (q, name, sample_id), disabled or spot, next_help
    )


def _switch_queue(kind: str) -> None:
    st.session_state["review_queue"] = kind


def _offer_next_queue(q: Queue, name: str) -> None:
    """A button to the next queue that has work, when there is one."""
    fresh = queue_counts(eng, q.batch_id, name, queue_kinds(eng, actor, q.batch_id), blind=q.blind)
    following = first_queue_with_work(fresh, after=q.kind)
    if following is not None and st.button(
        f"Go to {_queue_label(following, fresh)}",
        key="review_next_queue",
        type="primary",
        icon=":material/arrow_forward:",
        on_click=_switch_queue,
        args=(following,),
    ):
        st.rerun()


@st.fragment
def review_panel(q: Queue, name: str) -> None:
    """The card: one sample and its decision buttons. Deciding reruns only this."""
    if q.kind == "spot-check" and spot_check(eng, q.batch_id) is None and can(Action.DECIDE):
        draw_spot_check(eng, current_actor(), q.batch_id, zero_failure_sample_size(max_error, confidence))
    state = _queue_state(q, name)
    if state["current"] is None:
        state["current"] = next_sample(eng, _reader(name), q)
    if "review_flash" in st.session_state:
        st.toast(st.session_state.pop("review_flash"), icon=":material/check:")
    if not q.blind:
        _live_bound(q.batch_id)
    sample_id = state["current"]
    if sample_id is None:
        st.success(f"Nothing left for {name} in this queue.", icon=":material/done_all:")
        _offer_next_queue(q, name)
        if q.kind == "spot-check":
            summary = acceptance_summary(eng, q.batch_id, max_error, confidence, with_population=False)
            if not summary.holds and st.button(
                f"Draw {max(1, summary.remaining)} more random samples",
                key="draw_more",
                **permitted(Action.DECIDE),
            ):
                draw_spot_check(eng, current_actor(), q.batch_id, summary.pool + max(1, summary.remaining))
                st.rerun(scope="fragment")
        if st.button("Check again", key="review_refresh", icon=":material/refresh:"):
            st.rerun(scope="fragment")
        _decision_bar(q, name, None)
        return
    card = review_card(eng, sample_id, actor)
    sample = card.sample
    remaining = queue_remaining(eng, q, name)
    st.subheader(f"Sample {sample.id}")
    outcome = "hidden" if card.hidden else OUTCOME[sample.passed]
    st.caption(
        f"verifiers **{outcome}** · batch **{sample.batch}** · {sample.family} · item {sample.item_index}"
        + (f" · id `{sample.external_id}`" if sample.external_id else "")
        + (f" · {remaining:,} left in this queue" if remaining is not None else "")
    )
    _decision_bar(q, name, sample_id)
    extra = st.columns([3, 2])
    extra[0].multiselect(
        "Reasons",
        settings.reason_tags,
        key=f"review_tags_{sample_id}",
        placeholder="reason tags (optional)",
    )
    extra[1].text_input("Note", key=f"review_note_{sample_id}", placeholder="optional")
    left, right = st.columns([3, 2])
    with left:
        transcript = conversation(sample.metadata or {})
        rendered = st.toggle(
            "Render as markdown", key="review_markdown", help="Formatting only; HTML and images never render."
        )
        if transcript is not None:
            _show_transcript(transcript, markdown=rendered)
        else:
            st.markdown("**Prompt**")
            show_untrusted(sample.prompt)
            st.markdown("**Response**")
            show_untrusted(
                sample.response,
                markdown=rendered,
                language="python" if sample.family == "code" and not rendered else None,
            )
        metadata = sample.metadata or {}
        if metadata.get("validation_error"):
            st.markdown(":red[**Structured output failed validation**] (kept, flagged)")
            show_untrusted(str(metadata["validation_error"]))
        elif isinstance(metadata.get("fields"), dict):
            st.markdown("**Structured fields**")
            show_json(metadata["fields"])
        if sample.reference:
            st.markdown("**Reference**")
            show_json(sample.reference)
    with right:
        _show_guidelines()
        st.markdown("**Verdicts**")
        if card.hidden:
            st.caption(NOTICE)
        else:
            _show_verdicts(sample.verdicts)
        st.markdown("**Near-duplicates and matches**")
        _show_related(card.marks, empty="No diversity marks.")
        st.markdown("**Nearest neighbours**")
        _show_neighbours(sample_id)
        similar = st.expander(
            "Similar samples (all batches and reference sets)",
            key="review_similar",
            on_change="rerun",
            icon=":material/travel_explore:",
        )
        with similar:
            if similar.open:
                _similar_section(q, name, sample_id)
        if sample.metadata:
            with st.expander("Metadata", icon=":material/data_object:"):
                show_json(sample.metadata)
        if sample.history:
            with st.expander(
                f"History ({len(sample.history)} events)", icon=":material/history:", expanded=True
            ):
                st.dataframe(
                    pd.DataFrame(sample.history)[
                        [
                            "id",
                            "created_at",
                            "reviewer",
                            "action",
                            "reason_tags",
                            "note",
                            "bulk_event_id",
                            "undoes_id",
                        ]
                    ],
                    hide_index=True,
                )


def _show_guidelines() -> None:
    """The batch's guidelines, admin-written markdown shown without HTML or images."""
    if settings.guidelines.strip():
        with st.expander("Guidelines", icon=":material/menu_book:", expanded=True):
            show_untrusted(settings.guidelines, markdown=True)


def _save_settings(batch_id: int) -> None:
    tags = [line.strip() for line in st.session_state["settings_tags"].splitlines() if line.strip()]
    try:
        set_review_settings(
            eng,
            actor,
            batch_id,
            blind=st.session_state["settings_blind"],
            guidelines=st.session_state["settings_guidelines"],
            reason_tags=tags,
        )
    except (SettingsError, PermissionDenied) as exc:
        st.session_state["settings_error"] = str(exc)
        return
    st.session_state.pop("settings_error", None)
    _flash("Review settings saved.")


def settings_panel(batch_id: int) -> None:
    """Admins only: blind review, guidelines and reason tags of the batch."""
    if actor is None or not actor.can(Action.CONFIGURE_BATCH):
        return
    with st.expander("Batch review settings", icon=":material/settings:"):
        if st.session_state.get("settings_batch") != batch_id:
            st.session_state["settings_batch"] = batch_id
            st.session_state["settings_blind"] = settings.blind
            st.session_state["settings_guidelines"] = settings.guidelines
            st.session_state["settings_tags"] = "\n".join(settings.reason_tags)
        st.toggle(
            "Blind review",
            key="settings_blind",
            help="Reviewers see no verdicts, judge scores or others' decisions until they decide.",
        )
        st.text_area("Guidelines (markdown)", key="settings_guidelines", height=200)
        st.text_area("Reason tags (one a line)", key="settings_tags", height=160)
        if "settings_error" in st.session_state:
            st.error(st.session_state["settings_error"], icon=":material/error:")
        st.button("Save settings", key="settings_save", on_click=_save_settings, args=(batch_id,))


def acceptance_tab(batch_id: int, name: str) -> None:
    summary = acceptance_summary(eng, batch_id, max_error, confidence)
    st.markdown(
        f"Claim: **the error rate of the verifier-passed samples of {by_id[batch_id].name} is at most "
        f"{max_error:.1%}, with {confidence:.0%} confidence.** Read random samples from the spot-check queue; "
        "each reject is a failure."
    )
    cols = st.columns(6)
    cols[0].metric("Verifier-passed set", f"{summary.population:,}")
    cols[1].metric("Plan (no failures)", summary.plan)
    cols[2].metric("Read", summary.reviewed)
    cols[3].metric("Failures", summary.failures)
    cols[4].metric("Upper bound", f"{summary.upper_bound:.2%}")
    cols[5].metric(
        "Needed", summary.required, help="Reads needed with the failures found so far, if no more turn up."
    )
    if summary.holds:
        st.success(
            f"The bound holds: {summary.upper_bound:.2%} ≤ {max_error:.1%}.", icon=":material/verified:"
        )
    else:
        st.warning(f"Not yet: read {summary.remaining} more random samples.", icon=":material/hourglass_top:")
    pool = spot_check(eng, batch_id)
    with st.expander("Spot-check pool", icon=":material/casino:"):
        if pool:
            st.caption(
                f"{pool.size} samples drawn with seed {pool.seed}; each goes to {pool.overlap} reviewer(s)."
            )
        size = st.number_input(
            "Pool size",
            1,
            max(1, summary.population),
            min(max(pool.size if pool else 0, summary.required, 1), max(1, summary.population)),
            key="pool_size",
        )
        seed = st.number_input(
            "Seed", 0, 2**31 - 1, pool.seed if pool else 0, key="pool_seed", disabled=pool is not None
        )
        overlap = st.number_input(
            "Reviewers per sample (overlap)", 1, 10, pool.overlap if pool else 1, key="pool_overlap"
        )
        if st.button(
            "Draw / update the pool",
            key="pool_draw",
            **permitted(Action.CONFIGURE_BATCH, blocked=not summary.population),
        ):
            result = draw_spot_check(
                eng, current_actor(), batch_id, int(size), seed=int(seed), overlap=int(overlap)
            )
            _flash(f"Spot-check pool: {result.size} samples, overlap {result.overlap}.")
            st.rerun()
    count = preview_accept_passed(eng, batch_id)
    st.markdown("**Accept the set**")
    confirmed = st.checkbox(
        f"Accept the {count:,} undecided verifier-passed samples of {by_id[batch_id].name} as one bulk action",
        key="confirm_accept_set",
        **permitted(Action.BULK, blocked=not summary.holds or not count),
    )
    if st.button(
        "Accept the set",
        type="primary",
        icon=":material/done_all:",
        key="accept_set",
        disabled=not (summary.holds and confirmed and count and can(Action.BULK)),
    ):
        try:
            result = bulk_accept_passed(
                eng, current_actor(), batch_id, max_error=max_error, confidence=confidence
            )
            _flash(f"Accepted {result.count:,} samples (bulk event {result.bulk_event_id}).")
        except BoundNotMet as exc:
            _flash(str(exc))
        st.session_state.pop("confirm_accept_set", None)
        st.rerun()

    scores = verifier_scores(eng, batch_id)
    titled_table(
        "Verifiers against human decisions",
        [
            {
                "verifier": s.verifier,
                "n": s.n,
                "passed & accepted": s.tp,
                "passed & rejected": s.fp,
                "failed & accepted": s.fn,
                "failed & rejected": s.tn,
                "precision": s.precision,
                "recall": s.recall,
            }
            for s in scores
        ],
        "No verified sample has a human decision yet.",
        column_config={
            "precision": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent"),
            "recall": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent"),
        },
    )
    slices = sorted(
        family_slices(eng, batch_id, confidence) + verifier_slices(scores, confidence), key=lambda s: -s.width
    )
    st.markdown("**Where to look next**")
    for text in suggestions(summary, scores, slices) or ["Nothing stands out."]:
        st.markdown(f"- {text}")
    if slices:
        with st.expander("Error rate by slice", icon=":material/pie_chart:"):
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "slice": s.kind,
                            "name": s.name,
                            "read": s.reviewed,
                            "failures": s.failures,
                            "low": s.interval[0],
                            "high": s.interval[1],
                            "width": s.width,
                        }
                        for s in slices
                    ]
                ),
                hide_index=True,
            )


def _kappa_text(kappa: float | None) -> str:
    return "undefined" if kappa is None else f"{kappa:.3f}"


def _heatmap(
    rows: list[str], columns: list[str], cells: dict[tuple[str, str], float | None], key: str
) -> None:
    """A kappa heatmap (-1..1); blank where two raters share no judged sample."""
    z = [[cells.get((r, c)) for c in columns] for r in rows]
    text = [["" if v is None else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=columns,
            y=rows,
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            text=text,
            texttemplate="%{text}",
            colorbar={"title": "kappa"},
        )
    )
    fig.update_layout(height=120 + 40 * len(rows), margin={"t": 10, "b": 10})
    st.plotly_chart(fig, key=key)


def _reviewer_plots(metrics: ReviewerMetrics) -> None:
    """Pace, drift of the accept rate, and the kappa heatmaps."""
    paced = [r for r in metrics.reviewers if r.pace_seconds is not None]
    if paced:
        st.markdown("**Pace** (median seconds per decision, idle gaps excluded)")
        fig = go.Figure(go.Bar(x=[r.reviewer for r in paced], y=[r.pace_seconds for r in paced]))
        fig.update_layout(height=260, margin={"t": 10, "b": 10}, yaxis_title="seconds")
        st.plotly_chart(fig, key="reviewers_pace")
    if metrics.drift:
        st.markdown("**Drift** (each reviewer's decisions in time order, in slices)")
        fig = go.Figure()
        for reviewer_name in dict.fromkeys(d.reviewer for d in metrics.drift):
            windows = [d for d in metrics.drift if d.reviewer == reviewer_name]
            fig.add_trace(
                go.Scatter(
                    x=[d.window + 1 for d in windows],
                    y=[d.accept_rate for d in windows],
                    mode="lines+markers",
                    name=f"{reviewer_name} accept rate",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=[d.window + 1 for d in windows],
                    y=[d.agreement for d in windows],
                    mode="lines+markers",
                    line={"dash": "dot"},
                    name=f"{reviewer_name} agreement with others",
                )
            )
        fig.update_layout(
            height=300, margin={"t": 10, "b": 10}, xaxis_title="slice", yaxis={"range": [0, 1.05]}
        )
        st.plotly_chart(fig, key="reviewers_drift")
    names = [r.reviewer for r in metrics.reviewers]
    if metrics.pairs:
        st.markdown("**Cohen's kappa between reviewers**")
        cells: dict[tuple[str, str], float | None] = {(n, n): 1.0 for n in names}
        for pair in metrics.pairs:
            cells[(pair.first, pair.second)] = cells[(pair.second, pair.first)] = pair.kappa
        _heatmap(names, names, cells, "reviewers_kappa")
    if metrics.verifiers:
        st.markdown("**Cohen's kappa against verifiers** (current versions; passed = accept)")
        verifiers = sorted({v.verifier for v in metrics.verifiers})
        rows = [n for n in names if any(v.reviewer == n for v in metrics.verifiers)]
        _heatmap(
            rows, verifiers, {(v.reviewer, v.verifier): v.kappa for v in metrics.verifiers}, "verifiers_kappa"
        )


def _assign_spot_check_form(batch_id: int) -> None:
    """The admin's spot-check assignment: named reviewers, overlap k."""
    actor = current_actor()
    if actor is None or not actor.can(Action.CONFIGURE_BATCH):
        st.caption("Assigning the spot-check is for admins.")
        return
    pool = spot_check(eng, batch_id)
    if pool is None:
        st.caption("Draw the spot-check pool first (Acceptance tab, or open the spot-check queue).")
        return
    st.caption(f"The pool holds {pool.size} samples; each goes to k distinct reviewers, never twice to one.")
    names = st.text_input("Reviewers (comma-separated)", key="spot_assign_names", placeholder="ada, bob, cy")
    overlap = st.number_input("Reviewers per sample (k)", 1, 10, max(1, pool.overlap), key="spot_assign_k")
    if st.button("Assign the spot-check", key="spot_assign", disabled=not names.strip()):
        listed = [n.strip() for n in names.split(",") if n.strip()]
        try:
            done = assign_spot_check(eng, actor, batch_id, listed, int(overlap))
            spread = ", ".join(f"{who} {n}" for who, n in done.per_reviewer.items())
            short = f"; {done.short} short of {done.overlap} reviewers" if done.short else ""
            st.session_state["spot_assign_result"] = (
                f"Assigned the spot-check with overlap {done.overlap}: {done.created} claims ({spread}){short}."
            )
        except ValueError as exc:
            st.session_state["spot_assign_result"] = str(exc)
    if "spot_assign_result" in st.session_state:
        st.text(st.session_state["spot_assign_result"])  # plain text: it holds reviewer names


def reviewers_tab(batch_id: int, name: str) -> None:
    idle = st.number_input(
        "Idle after (seconds)",
        10,
        24 * 3600,
        int(IDLE_SECONDS),
        10,
        key="reviewers_idle",
        help="Gaps between two decisions longer than this are breaks: left out of the pace.",
    )
    metrics = reviewer_metrics(eng, batch_id, idle_seconds=float(idle))
    agreement = reviewer_agreement(eng, batch_id)
    cols = st.columns(3)
    if agreement.items:
        method = "Cohen's" if len(agreement.pairs) == 1 else "Fleiss'"
        cols[0].metric(
            f"{method} kappa",
            _kappa_text(agreement.kappa),
            help=f"{agreement.items} samples decided by two or more reviewers",
        )
    else:
        cols[0].metric("Kappa", "—", help="No sample was decided by two reviewers yet.")
    cols[1].metric("Reviewers", len(metrics.reviewers))
    cols[2].metric("Decisions", sum(r.decisions for r in metrics.reviewers))
    if metrics.reviewers:
        paces = ", ".join(
            f"{r.reviewer} {'—' if r.pace_seconds is None else f'{r.pace_seconds:.1f} s'}"
            for r in metrics.reviewers
        )
        st.text(f"Pace (median seconds per decision, idle gaps left out): {paces}")  # plain text: names
    titled_table(
        "Reviewers",
        [
            {
                "reviewer": r.reviewer,
                "decisions": r.decisions,
                "pace (median s)": r.pace_seconds,
                "idle gaps": r.idle_gaps,
                "accept rate": r.accept_rate,
                "accepted": r.accepted,
                "rejected": r.rejected,
                "skipped": r.skipped,
            }
            for r in metrics.reviewers
        ],
        "No decisions in this batch yet.",
        column_config={
            "accept rate": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent")
        },
    )
    titled_table(
        "Agreement between reviewers",
        [
            {
                "reviewers": f"{p.first} / {p.second}",
                "kappa": p.kappa,
                "observed": p.observed,
                "samples": p.items,
            }
            for p in metrics.pairs
        ],
        "No sample was decided by two reviewers yet: assign the spot-check with an overlap.",
    )
    titled_table(
        "Agreement with verifiers",
        [
            {
                "reviewer": v.reviewer,
                "verifier": v.verifier,
                "kappa": v.kappa,
                "observed": v.observed,
                "samples": v.items,
            }
            for v in metrics.verifiers
        ],
        "No decided sample has a current verdict.",
    )
    _reviewer_plots(metrics)
    with st.expander("Assign the spot-check (overlap)", icon=":material/group_add:"):
        _assign_spot_check_form(batch_id)
    with st.expander("Assign samples to reviewers", icon=":material/assignment_ind:"):
        names = st.text_input("Reviewers (comma-separated)", key="assign_names", placeholder="ada, bob")
        count = st.number_input("Samples", 1, 100_000, 50, key="assign_count")
        per_sample = st.number_input("Reviewers per sample", 1, 10, 1, key="assign_per_sample")
        if st.button(
            "Assign",
            key="assign",
            **permitted(Action.CONFIGURE_BATCH, blocked=not names.strip()),
        ):
            listed = [n.strip() for n in names.split(",") if n.strip()]
            try:
                created = assign_round_robin(
                    eng, current_actor(), batch_id, listed, int(count), per_sample=int(per_sample)
                )
                _flash(f"Created {created} assignments.")
            except ValueError as exc:
                _flash(str(exc))
            st.rerun()


def bulk_tab(batch_id: int, name: str) -> None:
    st.markdown("**Reject all failures of a reason**")
    reasons = rejectable_reasons(eng, batch_id)
    if reasons:
        choice = st.selectbox(
            "Verifier and reason",
            range(len(reasons)),
            key="bulk_reason",
            format_func=lambda i: (
                f"{reasons[i][0]}: {reasons[i][1] or '(no reason)'} — {reasons[i][2]:,} undecided"
            ),
        )
        verifier, reason, _ = reasons[choice]
        tags = st.multiselect("Reasons to record", settings.reason_tags, key="bulk_tags")
        count = preview_reject_failures(eng, batch_id, verifier, reason)
        confirmed = st.checkbox(
            f"Reject these {count:,} undecided samples as one bulk action",
            key="confirm_bulk_reject",
            **permitted(Action.BULK),
        )
        if st.button(
            "Reject them",
            icon=":material/block:",
            key="bulk_reject",
            disabled=not (confirmed and count and can(Action.BULK)),
        ):
            result = bulk_reject_failures(eng, current_actor(), batch_id, verifier, reason, reason_tags=tags)
            _flash(f"Rejected {result.count:,} samples (bulk event {result.bulk_event_id}).")
            st.session_state.pop("confirm_bulk_reject", None)
            st.rerun()
    else:
        st.caption("No undecided failures in this batch.")
    st.markdown("**Bulk events**")
    events = list_bulk_events(eng, batch_id)
    if not events:
        st.caption("None yet.")
    for event in events:
        status = f" · undone by #{event.undone_by}" if event.undone_by else ""
        if event.state != "done":
            status += f" · **{event.state}**"
        with st.container(border=True):
            st.markdown(
                f"**#{event.id} {event.action}** · {event.count:,} samples · {event.reviewer}{status}"
            )
            st.caption(event.rule)
            if event.state == "applying" and st.button(
                "Resume",
                key=f"resume_bulk_{event.id}",
                icon=":material/play_arrow:",
                help=why_not(Action.BULK)
                or "Its process stopped before the end; resuming decides only what is missing.",
                disabled=not can(Action.BULK),
            ):
                result = resume_bulk(eng, current_actor(), event.id)
                _flash(f"Bulk event {event.id}: {result.count:,} samples, {result.state}.")
                st.rerun()
            if (
                event.action != "undo"
                and not event.undone_by
                and st.button(
                    "Undo",
                    key=f"undo_bulk_{event.id}",
                    icon=":material/undo:",
                    **permitted(Action.BULK),
                )
            ):
                result = undo_bulk(eng, current_actor(), event.id)
                _flash(f"Undid bulk event {event.id}: {result.count:,} samples undecided again.")
                st.rerun()


if "review_flash" in st.session_state and st.session_state.get("review_tab", "Review") != "Review":
    st.toast(st.session_state.pop("review_flash"), icon=":material/check:")
settings_panel(batch_id)
if blind:
    st.caption(NOTICE)
tabs = st.tabs(["Review", "Acceptance", "Reviewers", "Bulk actions"], key="review_tab", on_change="rerun")
name = reviewer()
with tabs[0]:
    if tabs[0].open:
        if require_reviewer():
            review_panel(queue, name)
for tab, show in ((tabs[1], acceptance_tab), (tabs[2], reviewers_tab)):
    with tab:
        if tab.open:
            if blind:
                st.info(NOTICE, icon=":material/visibility_off:")
            else:
                show(batch_id, name)
with tabs[3]:
    if tabs[3].open:
        explain_refusal(Action.BULK)
        if blind:
            st.info(NOTICE, icon=":material/visibility_off:")
        else:
            bulk_tab(batch_id, name)
