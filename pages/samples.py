"""Browse samples: filter, search, page; select a row to read it in full and decide."""

import pandas as pd
import streamlit as st

from curation.auth import Action
from curation.data import FAMILIES
from curation.review.blind import NOTICE, redact_rows, visible_filter, visible_sample
from curation.review.decisions import record_decision, undo_last
from curation.review.settings import review_settings
from curation.store.queries import (
    PAGE_SIZE,
    SampleFilter,
    count_samples,
    get_sample,
    list_batches,
    query_samples,
)
from pages.common import (
    current_actor,
    engine,
    explain_refusal,
    page_header,
    show_json,
    show_untrusted,
)

page_header("Samples", "Every candidate in the workspace. Select a row to read it in full and decide.")

eng = engine()
actor = current_actor()
batches = [b for b in list_batches(eng) if b.origin in ("synthetic", "real")]
by_name = {b.name: b for b in batches}
if not batches:
    st.info("No batches yet.", icon=":material/info:")
    st.page_link("pages/import_data.py", label="Import data", icon=":material/upload_file:")
    st.stop()

PASSED_LABELS = {"passed": True, "failed": False, "not judged": None}

with st.container(border=True):
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    chosen = c1.multiselect(
        "Batches", list(by_name), key="filter_batches", placeholder="All synthetic batches"
    )
    families = c2.multiselect("Families", FAMILIES, key="filter_families", placeholder="All")
    decisions = c3.multiselect(
        "Decision", ["undecided", "accept", "reject", "skip"], key="filter_decisions", placeholder="Any"
    )
    verified = c4.multiselect("Verifiers", list(PASSED_LABELS), key="filter_passed", placeholder="Any")
    search = st.text_input("Search prompt and response", key="filter_search", placeholder="words to find…")

filters = SampleFilter(
    batch_ids=[by_name[name].id for name in chosen],
    families=families,
    decisions=decisions,
    passed=[PASSED_LABELS[label] for label in verified],
    search=search,
    origins=["synthetic", "real"] if any(by_name[n].origin == "real" for n in chosen) else ["synthetic"],
)
filters, left_out = visible_filter(eng, actor, filters)
filter_key = repr(filters)
if st.session_state.get("browse_filter_key") != filter_key:
    st.session_state["browse_filter_key"] = filter_key
    st.session_state["browse_page"] = 1

total = count_samples(eng, filters)
pages = max(1, -(-total // PAGE_SIZE))
page_number = min(st.session_state.get("browse_page", 1), pages)
rows, _ = query_samples(eng, filters, offset=(page_number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
rows, hidden_ids = redact_rows(eng, actor, rows)
if left_out:
    st.caption(f"{NOTICE}: the verifier and decision filters leave out blind batches.")

nav = st.columns([1, 1, 6])
if nav[0].button("Previous", icon=":material/chevron_left:", disabled=page_number <= 1, key="prev_page"):
    st.session_state["browse_page"] = page_number - 1
    st.rerun()
if nav[1].button("Next", icon=":material/chevron_right:", disabled=page_number >= pages, key="next_page"):
    st.session_state["browse_page"] = page_number + 1
    st.rerun()
nav[2].caption(f"{total:,} samples · page {page_number} of {pages}")

OUTCOME = {True: "pass", False: "fail", None: "—"}
frame = pd.DataFrame(
    [
        {
            "id": row.id,
            "batch": row.batch,
            "family": row.family,
            "prompt": row.prompt,
            "response": row.response,
            "verifiers": "hidden" if row.id in hidden_ids else OUTCOME[row.passed],
            "decision": "hidden" if row.id in hidden_ids else row.decision or "undecided",
        }
        for row in rows
    ],
    columns=["id", "batch", "family", "prompt", "response", "verifiers", "decision"],
)
selection = st.dataframe(
    frame,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key=f"samples_table_{page_number}",
    column_config={
        "id": st.column_config.NumberColumn(width="small"),
        "prompt": st.column_config.TextColumn(width="medium"),
        "response": st.column_config.TextColumn(width="medium"),
    },
)
selected_rows = selection.selection.rows if selection else []
if selected_rows:
    st.session_state["open_sample"] = int(frame.iloc[selected_rows[0]]["id"])

if "flash" in st.session_state:
    st.toast(st.session_state.pop("flash"), icon=":material/check:")

sample_id = st.session_state.get("open_sample")
if sample_id is None:
    st.caption("Select a row to open the sample.")
    st.stop()


@st.fragment
def sample_panel(sample_id: int) -> None:
    try:
        sample, hidden = visible_sample(eng, actor, get_sample(eng, sample_id))
    except KeyError:
        st.warning("That sample no longer exists.")
        return
    st.divider()
    head = st.columns([4, 2])
    head[0].subheader(f"Sample {sample.id}")
    head[0].caption(
        f"batch **{sample.batch}** · {sample.family} · item {sample.item_index}"
        + (f" · candidate {sample.candidate_index}" if sample.candidate_index else "")
        + (f" · id `{sample.external_id}`" if sample.external_id else "")
    )
    current = "hidden" if hidden else sample.decision or "undecided"
    head[1].metric("Current decision", current)

    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Prompt**")
        show_untrusted(sample.prompt)
        st.markdown("**Response**")
        rendered = st.toggle(
            "Render as markdown", key=f"md_{sample.id}", help="Formatting only; HTML and images never render."
        )
        show_untrusted(
            sample.response, markdown=rendered, language=None if sample.family != "code" else "markdown"
        )
    with right:
        if sample.reference:
            st.markdown("**Reference**")
            show_json(sample.reference)
        st.markdown("**Verdicts**")
        if hidden:
            st.caption(NOTICE)
        elif sample.verdicts:
            for verdict in sample.verdicts:
                icon = {True: ":material/check:", False: ":material/close:", None: ":material/help:"}[
                    verdict["passed"]
                ]
                with st.expander(
                    f"{verdict['verifier']} v{verdict['version']}: {verdict['reason'] or OUTCOME[verdict['passed']]}",
                    icon=icon,
                ):
                    show_json(verdict["details"])
        else:
            st.caption("Not verified yet.")
        if sample.marks:
            st.markdown("**Diversity marks**")
            for mark in sample.marks:
                st.caption(f"{mark['kind']}: {mark['reason']}")
        if sample.metadata:
            with st.expander("Metadata"):
                show_json(sample.metadata)

    name = explain_refusal(Action.DECIDE)
    with st.container(border=True):
        tags = st.multiselect(
            "Reasons", review_settings(eng, sample.batch_id).reason_tags, key=f"tags_{sample.id}"
        )
        note = st.text_input("Note", key=f"note_{sample.id}", placeholder="optional")
        buttons = st.columns(4)
        action = None
        if buttons[0].button(
            "Accept", type="primary", icon=":material/check:", disabled=not name, key="accept", shortcut="a"
        ):
            action = "accept"
        if buttons[1].button(
            "Reject", icon=":material/close:", disabled=not name, key="reject", shortcut="x"
        ):
            action = "reject"
        if buttons[2].button(
            "Skip", icon=":material/skip_next:", disabled=not name, key="skip", shortcut="s"
        ):
            action = "skip"
        if buttons[3].button("Undo", icon=":material/undo:", disabled=not name, key="undo", shortcut="u"):
            undone = undo_last(eng, current_actor(), sample.id)
            st.session_state["flash"] = (
                "Undid your last decision on this sample." if undone else "Nothing to undo here."
            )
            st.rerun()
        if action:
            record_decision(eng, current_actor(), sample.id, action, reason_tags=tags, note=note)
            st.session_state["flash"] = f"Sample {sample.id}: {action}"
            st.rerun()

    if sample.history:
        with st.expander(f"History ({len(sample.history)} events)", icon=":material/history:"):
            st.dataframe(pd.DataFrame(sample.history), hide_index=True)


sample_panel(sample_id)
