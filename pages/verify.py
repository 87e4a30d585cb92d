"""Verify batches in the background; pass rates, failure reasons, verdicts per sample
and verdict changes between verifier versions."""

import os

import pandas as pd
import plotly.express as px
import streamlit as st

from curation.auth import Action
from curation.data import FAMILIES
from curation.review.blind import NOTICE, hidden_batch_ids, visible_sample
from curation.store.queries import get_sample, list_batches
from curation.verification import VERIFIERS
from curation.verification.chains import DEFAULT_CHAINS
from curation.verification.jobs import start_verification
from curation.verification.judge import judge_config_from_env
from curation.verification.report import (
    VerdictFilter,
    failure_reasons,
    verdict_flips,
    verdict_table,
    verdict_view,
    verifier_summary,
    verifier_versions,
)
from pages.common import (
    current_actor,
    engine,
    job_status,
    page_header,
    permitted,
    show_json,
    show_untrusted,
)

page_header(
    "Verify",
    "Every family's verifier chain over whole batches, on every core. Only samples without a verdict "
    "of the current verifier version are checked, unless you re-verify.",
)

eng = engine()
synthetic = [b for b in list_batches(eng) if b.origin == "synthetic"]
actor = current_actor()
hidden = hidden_batch_ids(eng, actor)
batches = [b for b in synthetic if b.id not in hidden]
by_name = {b.name: b for b in batches}
if len(batches) < len(synthetic):
    st.caption(f"{NOTICE}: {len(synthetic) - len(batches)} blind batch(es) left out.")
if not batches:
    st.info("No candidate batches yet.", icon=":material/info:")
    st.page_link("pages/import_data.py", label="Import data", icon=":material/upload_file:")
    st.stop()

OUTCOME = {True: "pass", False: "fail", None: "—"}
OUTCOME_FILTER = {"failed": False, "passed": True, "not judged": None}


def label(text: object) -> str:
    """Text for chart labels: Plotly renders a few HTML tags in labels, so none get through."""
    return str(text).replace("<", "‹").replace(">", "›")


# -- start a run -------------------------------------------------------------------------------

judge = judge_config_from_env()
with st.container(border=True):
    chosen = st.multiselect(
        "Batches", list(by_name), key="verify_batches", placeholder="Choose batches to verify"
    )
    c1, c2, c3 = st.columns([4, 1, 1])
    verifiers = c1.multiselect(
        "Verifiers",
        VERIFIERS.names(),
        key="verify_verifiers",
        placeholder="Default chain per family",
        help="; ".join(f"{family}: {' + '.join(chain)}" for family, chain in DEFAULT_CHAINS.items())
        + " (judge only when a judge endpoint is configured)",
    )
    jobs = c2.number_input(
        "Processes", min_value=1, max_value=64, value=os.cpu_count() or 1, key="verify_jobs"
    )
    reverify = c3.checkbox(
        "Re-verify", key="verify_reverify", help="Verify again even where a verdict exists."
    )
    if judge is None:
        st.caption(
            "No judge endpoint configured (ASSAY_JUDGE_BASE_URL, ASSAY_JUDGE_MODEL): open samples get the quality rules only."
        )
    else:
        st.caption(f"Judge: {judge.model} at {judge.endpoint}")
    if st.button(
        "Verify",
        type="primary",
        icon=":material/fact_check:",
        **permitted(Action.VERIFY, blocked=not chosen),
        key="verify_start",
    ):
        try:
            st.session_state["verify_job"] = start_verification(
                eng,
                current_actor(),
                chosen,
                verifiers=verifiers or None,
                jobs=int(jobs),
                reverify=reverify,
            )
        except (ValueError, KeyError) as exc:
            st.error(str(exc.args[0] if exc.args else exc), icon=":material/error:")

if st.session_state.get("verify_job"):
    job_status(st.session_state["verify_job"], key="verify_job", show_executor=True)

# -- results -----------------------------------------------------------------------------------

shown = chosen or list(by_name)
batch_ids = [by_name[name].id for name in shown]
stats = verifier_summary(eng, batch_ids)
if not stats:
    st.caption("No verdicts in these batches yet.")
    st.stop()

st.subheader("Pass rate per verifier")
rates = pd.DataFrame(
    [
        {
            "batch": label(s.batch),
            "verifier": f"{s.verifier} v{s.version}",
            "pass rate": s.pass_rate,
            "passed": s.passed,
            "failed": s.failed,
            "unknown": s.unknown,
        }
        for s in stats
    ]
)
chart = px.bar(
    rates,
    x="verifier",
    y="pass rate",
    color="batch",
    barmode="group",
    hover_data=["passed", "failed", "unknown"],
    range_y=[0, 1],
)
chart.update_layout(yaxis_tickformat=".0%", height=320, margin={"t": 10, "b": 10})
st.plotly_chart(chart, key="verify_rates")

reasons = failure_reasons(eng, batch_ids, limit=12)
if reasons:
    st.subheader("Top failure reasons")
    frame = pd.DataFrame(
        [{"reason": label(r.reason), "verifier": r.verifier, "samples": r.count} for r in reversed(reasons)]
    )
    chart = px.bar(frame, x="samples", y="reason", color="verifier", orientation="h")
    chart.update_layout(height=max(220, 34 * len(reasons)), margin={"t": 10, "b": 10}, yaxis_title=None)
    st.plotly_chart(chart, key="verify_reasons")

# -- the table ---------------------------------------------------------------------------------

st.subheader("Verdicts")
f1, f2, f3 = st.columns(3)
outcome_labels = f1.multiselect(
    "Outcome", list(OUTCOME_FILTER), key="verify_filter_outcome", placeholder="Any"
)
families = f2.multiselect("Families", FAMILIES, key="verify_filter_families", placeholder="All")
failed_by = f3.selectbox(
    "Failed by", ["any verifier", *sorted({s.verifier for s in stats})], key="verify_filter_failed_by"
)
filters = VerdictFilter(
    batch_ids=batch_ids,
    families=families,
    outcomes=[OUTCOME_FILTER[o] for o in outcome_labels],
    failed_by=None if failed_by == "any verifier" else failed_by,
)
rows, total = verdict_table(eng, filters, limit=500)
names = sorted({name for row in rows for name in row.verdicts})
frame = pd.DataFrame(
    [
        {
            "id": row.sample_id,
            "batch": row.batch,
            "family": row.family,
            "outcome": OUTCOME[row.passed],
            **{name: OUTCOME[row.verdicts[name]] if name in row.verdicts else "" for name in names},
            "first failure": next(
                (f"{name}: {row.reasons[name]}" for name in names if row.verdicts.get(name) is False), ""
            ),
            "decision": row.decision or "undecided",
            "prompt": row.prompt,
        }
        for row in rows
    ],
    columns=["id", "batch", "family", "outcome", *names, "first failure", "decision", "prompt"],
)
st.caption(f"{total:,} samples" + (f" (first {len(rows):,} shown)" if total > len(rows) else ""))
selection = st.dataframe(
    frame,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="verify_table",
    column_config={"id": st.column_config.NumberColumn(width="small")},
)
if selection and selection.selection.rows:
    st.session_state["verify_sample"] = int(frame.iloc[selection.selection.rows[0]]["id"])

sample_id = st.session_state.get("verify_sample")
if sample_id is not None:
    try:
        sample, sample_hidden = visible_sample(eng, actor, get_sample(eng, sample_id))
    except KeyError:
        sample, sample_hidden = None, False
    if sample_hidden:
        st.caption(f"Sample {sample_id}: {NOTICE}")
        sample = None
    if sample is not None:
        st.divider()
        st.subheader(f"Sample {sample.id}")
        st.caption(
            f"{sample.family} · overall {OUTCOME[sample.passed]} · decision {sample.decision or 'undecided'}"
        )
        st.text(f"batch: {sample.batch}")
        left, right = st.columns([3, 2])
        with left:
            st.markdown("**Prompt**")
            show_untrusted(sample.prompt, height=200)
            st.markdown("**Response**")
            show_untrusted(
                sample.response, language="python" if sample.family == "code" else None, height=300
            )
        with right:
            if sample.reference:
                st.markdown("**Reference**")
                show_json(sample.reference)
        for verdict in sample.verdicts:
            st.markdown(f"**{verdict['verifier']} v{verdict['version']}** — {OUTCOME[verdict['passed']]}")
            st.text(verdict["reason"] or "")
            view = verdict_view(verdict["verifier"], verdict["details"])
            if view.facts:
                st.dataframe(
                    pd.DataFrame({"": list(view.facts), "value": [str(v) for v in view.facts.values()]}),
                    hide_index=True,
                    key=f"facts_{sample.id}_{verdict['verifier']}_{verdict['version']}",
                )
            if view.table:
                st.dataframe(
                    pd.DataFrame(view.table),
                    hide_index=True,
                    key=f"parts_{sample.id}_{verdict['verifier']}_{verdict['version']}",
                )
            for name, text in view.excerpts.items():
                st.caption(name)
                show_untrusted(text, height=160)
            with st.expander("All details"):
                show_json(verdict["details"])

# -- versions ----------------------------------------------------------------------------------

versions = {name: items for name, items in verifier_versions(eng, batch_ids).items() if len(items) > 1}
st.subheader("Verdict changes between versions")
if not versions:
    st.caption("Every verifier has one version here.")
else:
    v1, v2, v3 = st.columns(3)
    name = v1.selectbox("Verifier", list(versions), key="flip_verifier")
    known = [version for version, _count in versions[name]]
    old = v2.selectbox("From version", known[:-1], key="flip_old")
    new = v3.selectbox("To version", known[known.index(old) + 1 :], key="flip_new")
    flips = verdict_flips(eng, name, old, new, batch_ids=batch_ids, limit=2000)
    disagree = sum(f.human_disagrees for f in flips)
    st.caption(f"{len(flips):,} samples changed verdict · {disagree:,} now contradict a reviewer's decision")
    if flips:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "id": f.sample_id,
                        "batch": f.batch,
                        "change": f.change,
                        "decision": f.decision or "undecided",
                        "contradicts reviewer": f.human_disagrees,
                        f"v{old} reason": f.old_reason,
                        f"v{new} reason": f.new_reason,
                    }
                    for f in flips
                ]
            ),
            hide_index=True,
            key="flip_table",
        )
