"""Overview: what is in the workspace and where to go next."""

import pandas as pd
import streamlit as st

from curation.jobs import list_jobs
from curation.review.blind import NOTICE, hidden_batch_ids
from curation.store.queries import list_batches
from pages.common import current_actor, engine, page_header, split_by_origin

page_header(
    "Assay",
    "Curate synthetic training data: generate with a teacher, verify every sample, "
    "watch diversity against real data, spot-check by hand, export a mixed dataset.",
)

eng = engine()
batches = list_batches(eng)
synthetic, real = split_by_origin(batches, "synthetic", "real")
#: Blind batches whose verdict and decision counts this user may not see.
hidden = hidden_batch_ids(eng, current_actor())
shown = [b for b in synthetic if b.id not in hidden]

cols = st.columns(4)
cols[0].metric(
    "Synthetic samples", f"{sum(b.samples for b in synthetic):,}", help=f"in {len(synthetic)} batches"
)
cols[1].metric("Accepted", f"{sum(b.accepted for b in shown):,}")
cols[2].metric("Rejected", f"{sum(b.rejected for b in shown):,}")
cols[3].metric(
    "Real reference rows", f"{sum(b.samples for b in real):,}", help=f"in {len(real)} reference sets"
)

st.subheader("Batches")
if not batches:
    st.info(
        "The workspace is empty. Import a file to start, or run `python -m curation demo`.",
        icon=":material/info:",
    )
    st.page_link("pages/import_data.py", label="Import data", icon=":material/upload_file:")
else:
    frame = pd.DataFrame(
        [
            {
                "batch": b.name,
                "kind": b.origin,
                "family": b.family or "mixed",
                "source": b.source,
                "samples": b.samples,
                **(
                    dict.fromkeys(
                        ["verified pass", "verified fail", "accepted", "rejected", "undecided", "reviewed"]
                    )
                    if b.id in hidden
                    else {
                        "verified pass": b.passed,
                        "verified fail": b.failed,
                        "accepted": b.accepted,
                        "rejected": b.rejected,
                        "undecided": b.undecided,
                        "reviewed": (b.samples - b.undecided) / b.samples if b.samples else 0.0,
                    }
                ),
                "created": b.created_at,
            }
            for b in batches
        ]
    )
    if hidden & {b.id for b in batches}:
        st.caption(f"{NOTICE}: their verdict and decision counts are left out.")
    st.dataframe(
        frame,
        hide_index=True,
        # Short labels and set widths: every column fits at 1500 px, "source" and "created" included.
        column_config={
            "batch": st.column_config.TextColumn("batch", width="medium"),
            "kind": st.column_config.TextColumn(
                "kind",
                help="synthetic: candidates to curate · real: human reference data · eval: an evaluation set",
            ),
            "verified pass": st.column_config.NumberColumn("pass", help="verifiers passed", width="small"),
            "verified fail": st.column_config.NumberColumn("fail", help="a verifier failed", width="small"),
            "reviewed": st.column_config.ProgressColumn(
                "reviewed", format="percent", min_value=0, max_value=1, width="small"
            ),
            "source": st.column_config.TextColumn("source", width="small"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
        },
    )

st.subheader("How Assay keeps synthetic data honest")
steps = st.columns(3)
steps[0].markdown(
    "**1 · Good teacher, checked output**  \nEvery sample is checked by a verifier "
    "(math answers, code in a sandbox, instruction constraints) before a human sees it."
)
steps[1].markdown(
    "**2 · Diversity against real data**  \nDuplicates, copies of the reference set and "
    "narrowing distributions are flagged, never silently dropped."
)
steps[2].markdown(
    "**3 · Real data stays in the mix**  \nExports accumulate the real reference set with "
    "accepted synthetic samples, with provenance on every row."
)

active = [job for job in list_jobs(eng, limit=20) if job.active]
if active:
    st.subheader("Running jobs")
    for job in active:
        st.progress(job.fraction or 0.0, text=f"{job.title}: {job.message}")
    st.page_link("pages/jobs.py", label="All jobs", icon=":material/pending_actions:")
