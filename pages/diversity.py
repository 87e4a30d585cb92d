"""Diversity of a batch against the real reference set: warnings, metrics, a fixed 2-D map,
neighbour and tail histograms, cluster occupancy, trends across generations, duplicate marks."""

import html
from functools import partial

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from curation.auth import Action
from curation.diversity.service import (
    MARK_KINDS,
    Selection,
    collapse_for,
    compute_diversity,
    embedded_counts,
    list_marks,
    map_points,
    override_mark,
    start_diversity_job,
)
from curation.diversity.thresholds import DiversityThresholds
from curation.review.blind import NOTICE, hidden_batch_ids, visible_sample
from curation.store.queries import get_sample, list_batches
from pages.common import (
    can,
    current_actor,
    engine,
    job_status,
    page_header,
    show_untrusted,
    start_from_page,
    why_not,
)

page_header(
    "Diversity",
    "Is the batch as varied as real data? Every metric is compared with the reference set (origin "
    "'real') on equal-size samples. Duplicates become marks a reviewer can override — nothing is dropped.",
)

eng = engine()
hidden = hidden_batch_ids(eng, current_actor())
THRESHOLDS = DiversityThresholds()
all_batches = list_batches(eng)
batches = {b.name: b for b in all_batches if b.origin == "synthetic" and b.id not in hidden}
if any(b.id in hidden for b in all_batches):
    st.caption(f"{NOTICE}: blind batches are left out.")
references = [b for b in all_batches if b.origin == "real"]
if not references:
    st.info(
        "There is no reference set yet: import real, human-written data as a reference set "
        "(Import page, or `python -m curation demo` for the bundled one).",
        icon=":material/info:",
    )
    st.stop()
if not batches:
    st.info("No candidate batches yet.", icon=":material/info:")
    st.stop()


def plain(text: object) -> str:
    """Text for Plotly hover and labels: shown as text, never as HTML."""
    return html.escape(str(text)).replace("\n", " ")


# -- what to look at ---------------------------------------------------------------------------

c1, c2, c3 = st.columns([3, 2, 2])
name = c1.selectbox("Batch", list(batches), key="diversity_batch")
decisions = c2.multiselect(
    "Decisions",
    ["accept", "reject", "skip", "undecided"],
    key="diversity_decisions",
    placeholder="All samples",
)
color_by = c3.radio(
    "Colour the map by", ["source", "verdict", "decision", "cluster"], horizontal=True, key="diversity_color"
)
batch = batches[name]
selection = Selection(batch_ids=(batch.id,), decisions=tuple(decisions))

# -- background work -------------------------------------------------------------------------------

total, embedded = embedded_counts(eng, Selection(batch_ids=(batch.id,)))
ref_total, ref_embedded = embedded_counts(eng, Selection(origins=("real",)))
with st.container(border=True):
    st.caption(
        f"Embedded: this batch {embedded:,} / {total:,} · reference set {ref_embedded:,} / {ref_total:,} "
        "(all-MiniLM-L6-v2, cached per text)"
    )
    b = st.columns(4)
    locked = not can(Action.ANALYSE)
    jobs = {
        "embed_batch": b[0].button(
            "Embed batch",
            icon=":material/scatter_plot:",
            disabled=embedded == total or locked,
            help=why_not(Action.ANALYSE),
            key="diversity_embed",
        ),
        "embed_reference": b[1].button(
            "Embed reference set",
            icon=":material/library_books:",
            disabled=ref_embedded == ref_total or locked,
            help=why_not(Action.ANALYSE),
            key="diversity_embed_ref",
        ),
        "dedup": b[2].button(
            "Find duplicates",
            icon=":material/content_copy:",
            key="diversity_dedup",
            disabled=locked,
            help=why_not(Action.ANALYSE),
        ),
        "snapshot": b[3].button(
            "Save metrics snapshot",
            icon=":material/monitoring:",
            key="diversity_snapshot",
            disabled=embedded < total or ref_embedded < ref_total or locked,
            help=why_not(Action.ANALYSE)
            or "Record the metrics of this batch for the trend across generations.",
        ),
    }
    params = {
        "embed_batch": ("embed", {"batch": name}),
        "embed_reference": ("embed", {"reference": True}),
        "dedup": ("dedup", {"batch": name}),
        "snapshot": ("diversity", {"batch": name}),
    }
    for action, clicked in jobs.items():
        if clicked:
            kind, job_params = params[action]
            start_from_page(
                partial(start_diversity_job, eng, current_actor(), kind, job_params),
                key="diversity_job",
            )
    if st.session_state.get("diversity_job"):
        job_status(st.session_state["diversity_job"], key="diversity_job", show_executor=True)

if embedded < total or ref_embedded < ref_total:
    st.info("Embed the batch and the reference set to see the metrics and the map.", icon=":material/info:")
    st.stop()


@st.cache_data(show_spinner="Comparing with the reference set…", max_entries=8)
def live_report(batch_id: int, decisions: tuple[str, ...], embedded: int, ref_embedded: int) -> dict:
    result = compute_diversity(
        eng, Selection(batch_ids=(batch_id,), decisions=decisions), embed_missing=False, save=False
    )
    return {"summary": result.to_dict(), "arrays": dict(result.report.arrays)}


try:
    live = live_report(batch.id, tuple(decisions), embedded, ref_embedded)
except ValueError as exc:
    st.warning(str(exc.args[0] if exc.args else exc), icon=":material/warning:")
    st.stop()
summary, arrays = live["summary"], live["arrays"]

# -- warnings and metrics ---------------------------------------------------------------------------

for w in summary["warnings"]:
    st.warning(w["message"], icon=":material/warning:")
if not summary["warnings"]:
    st.success(
        "No diversity warning: the batch looks as varied as the reference set.",
        icon=":material/check_circle:",
    )
sampled = " (subsampled with a fixed seed)" if summary["sampled"] else ""
st.caption(
    f"{summary['n_synthetic']:,} samples vs {summary['n_reference']:,} real samples in "
    f"{', '.join(summary['reference'])}; compared on {summary['n_compared']:,} of each{sampled}."
)
metric_rows = [
    {"metric": k, "synthetic": v["synthetic"], "reference": v["reference"], "ratio": v["ratio"]}
    for k, v in summary["metrics"].items()
]
st.dataframe(pd.DataFrame(metric_rows), hide_index=True, key="diversity_metrics")
with st.expander("Warning thresholds", icon=":material/tune:"):
    st.markdown(
        f"- Vendi ratio below **{THRESHOLDS.vendi_ratio_min}**\n"
        f"- spread ratio below **{THRESHOLDS.spread_ratio_min}**\n"
        f"- coverage below **{THRESHOLDS.coverage_fraction_min} ×** the reference-vs-reference baseline "
        f"(two disjoint halves of the reference set)\n"
        f"- more than **{THRESHOLDS.duplicate_share_max:.0%}** of samples with a neighbour at cosine ≥ "
        f"**{THRESHOLDS.semantic_cosine}**\n"
        f"- reference samples in clusters with no synthetic sample more than **{THRESHOLDS.empty_cluster_share_max:.0%}** "
        "above the baseline (lost tails)\n"
        f"- across generations: a slope of Vendi or coverage below **−{THRESHOLDS.collapse_slope_tolerance:.0%}** "
        f"per generation (≥ {THRESHOLDS.collapse_min_generations} generations), a drop over "
        f"**{THRESHOLDS.collapse_max_drop:.0%}** between generations, or the real share of few-shot sources falling "
        f"by more than **{THRESHOLDS.real_share_drop:.0%}**\n"
        f"- duplicates: exact (normalised text), near (Jaccard ≥ {THRESHOLDS.near_dup_jaccard} on word "
        f"{THRESHOLDS.shingle_words}-grams), semantic (cosine ≥ {THRESHOLDS.semantic_cosine}), contamination "
        f"(a shared word {THRESHOLDS.contamination_ngram}-gram with an evaluation set)"
    )

tab_map, tab_nn, tab_tails, tab_clusters, tab_gen, tab_dups = st.tabs(
    ["Map", "Neighbours", "Tails", "Clusters", "Generations", "Duplicates"]
)

# -- the map -------------------------------------------------------------------------------------------

with tab_map:
    projection = st.radio(
        "Projection",
        ["PCA", "UMAP"],
        horizontal=True,
        key="diversity_projection",
        help="PCA: linear axes of the reference set, instant. UMAP: keeps neighbourhoods; fitted once per "
        "reference set (the first time takes from seconds to minutes), then loaded from a cache.",
    )
    method = projection.lower()
    note = st.empty()
    with st.spinner("Placing the points on the UMAP map…" if method == "umap" else "Placing the points…"):
        points = map_points(
            eng,
            selection,
            method=method,
            progress=lambda _done, _total, message: note.caption(message[:1].upper() + message[1:] + "…"),
        )
    note.empty()
    if points.fallback:
        st.error(
            f"UMAP failed, so the PCA map is shown instead. Reason: {points.fallback}",
            icon=":material/error:",
        )
    elif points.method == "umap":
        fitted = f"fitted on {points.n_fit:,} reference samples"
        took = f" in {points.fit_seconds:.0f} s" if points.fit_seconds is not None else ""
        st.caption(
            {
                "fitted": f"UMAP {fitted}{took} (first time for this reference set; cached for next time).",
                "disk": f"UMAP loaded from the cache ({fitted}{took}).",
                "memory": f"UMAP reused from memory ({fitted}{took}).",
            }.get(points.cache, f"UMAP {fitted}.")
        )
    if points.sampled:
        st.caption(f"{len(points.x):,} of {points.total:,} points drawn (a seeded sample).")
    labels = {
        "source": points.source,
        "verdict": points.verdict,
        "decision": points.decision,
        "cluster": [f"cluster {c}" for c in points.cluster],
    }[color_by]
    fig = go.Figure()
    trace_ids: list[np.ndarray] = []
    for value in sorted(set(labels)):
        rows = np.array([i for i, v in enumerate(labels) if v == value])
        is_real = points.origin[rows[0]] == "real" and color_by == "source"
        fig.add_trace(
            go.Scattergl(
                x=points.x[rows],
                y=points.y[rows],
                mode="markers",
                name=plain(value),
                marker={"size": 5 if is_real else 7, "opacity": 0.45 if is_real else 0.85},
                hovertext=[
                    plain(f"#{points.sample_ids[i]} · {points.source[i]} · {points.prompt[i][:200]}")
                    for i in rows
                ],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
        trace_ids.append(points.sample_ids[rows])
    axis = points.method.upper()
    fig.update_layout(
        height=520,
        margin={"t": 10, "b": 10},
        legend={"orientation": "h"},
        dragmode="lasso",
        xaxis_title=f"{axis} 1 ({points.explained[0]:.0%} of reference variance)"
        if points.method == "pca"
        else f"{axis} 1",
        yaxis_title=f"{axis} 2 ({points.explained[1]:.0%})" if points.method == "pca" else f"{axis} 2",
    )
    st.caption(
        "Axes are fitted on the reference set, so every batch is drawn in the same frame. Select a point to open it."
    )
    event = st.plotly_chart(
        fig, key="diversity_map", on_select="rerun", selection_mode=("points", "box", "lasso")
    )
    chosen = []
    for point in event.selection.points if event and event.selection else []:
        curve, index = point.get("curve_number"), point.get("point_index")
        if curve is not None and index is not None and curve < len(trace_ids):
            chosen.append(int(trace_ids[curve][index]))
    if chosen:
        st.session_state["diversity_sample"] = chosen[0]
        if len(chosen) > 1:
            st.caption(f"{len(chosen)} points selected; showing the first.")

# -- histograms ------------------------------------------------------------------------------------------


def _real_vs_synthetic(real: np.ndarray, synthetic: np.ndarray, x_title: str, top_margin: int) -> go.Figure:
    """Overlaid histograms of one measure on real and synthetic samples, as shares."""
    fig = go.Figure()
    for values, name in ((real, "real"), (synthetic, "synthetic")):
        fig.add_trace(go.Histogram(x=values, name=name, opacity=0.6, nbinsx=40, histnorm="probability"))
    fig.update_layout(
        barmode="overlay",
        height=360,
        margin={"t": top_margin, "b": 10},
        xaxis_title=x_title,
        yaxis_title="share of samples",
    )
    return fig


with tab_nn:
    if "syn_nn" in arrays:
        fig = _real_vs_synthetic(arrays["ref_nn"], arrays["syn_nn"], "cosine to the nearest other sample", 30)
        fig.add_vline(
            x=THRESHOLDS.semantic_cosine,
            line_dash="dash",
            annotation_text=f"duplicate threshold {THRESHOLDS.semantic_cosine}",
        )
        st.plotly_chart(fig, key="diversity_nn")
    else:
        st.caption("Too few samples for neighbour statistics.")

with tab_tails:
    fig = _real_vs_synthetic(
        arrays["ref_centroid"], arrays["syn_centroid"], "distance to the centre of the reference set", 10
    )
    st.caption(
        "A synthetic histogram shifted left of the real one has lost the tails of the real distribution."
    )
    st.plotly_chart(fig, key="diversity_tails")

with tab_clusters:
    clusters = summary["clusters"]
    if clusters:
        frame = pd.DataFrame(
            {
                "cluster": [f"{i}" for i in range(clusters["k"])],
                "real": clusters["reference_share"],
                "synthetic": clusters["synthetic_share"],
            }
        )
        fig = go.Figure(
            [
                go.Bar(x=frame["cluster"], y=frame["real"], name="real"),
                go.Bar(x=frame["cluster"], y=frame["synthetic"], name="synthetic"),
            ]
        )
        fig.update_layout(
            barmode="group",
            height=340,
            margin={"t": 10, "b": 10},
            xaxis_title="k-means cluster (fitted on the reference)",
            yaxis_title="share",
            yaxis_tickformat=".0%",
        )
        st.plotly_chart(fig, key="diversity_clusters")
        st.caption(
            f"{clusters['empty_clusters']} of {clusters['k']} clusters hold no synthetic sample "
            f"({clusters['empty_share']:.0%} of real samples; reference-vs-reference baseline "
            f"{(clusters['baseline_empty_share'] or 0):.0%})."
        )

with tab_gen:
    report = collapse_for(eng, batch.id, compute_missing=False)
    if len(report.points) < 2:
        st.caption(
            "No lineage to follow yet: generations appear when a batch's few-shot examples come from accepted "
            "samples of an earlier batch. Save a metrics snapshot of each generation to draw its trend."
        )
    else:
        for w in report.warnings:
            st.warning(w.message, icon=":material/trending_down:")
        fig = go.Figure()
        for trend in report.trends.values():
            fig.add_trace(
                go.Scatter(
                    x=trend["generations"],
                    y=trend["values"],
                    mode="lines+markers",
                    name=plain(trend["label"]),
                )
            )
        fig.update_layout(height=360, margin={"t": 10, "b": 10}, xaxis_title="generation", xaxis_dtick=1)
        st.caption(f"Lineage of {report.root_name!r}.")
        st.plotly_chart(fig, key="diversity_generations")

with tab_dups:
    marks = list_marks(eng, batch.id)
    if not marks:
        st.caption("No duplicate marks in this batch (run Find duplicates).")
    else:
        counts = pd.Series([m.kind for m in marks]).value_counts()
        st.caption(
            " · ".join(f"{kind}: {int(counts.get(kind, 0))}" for kind in MARK_KINDS if counts.get(kind))
        )
        frame = pd.DataFrame(
            [
                {
                    "mark": m.id,
                    "sample": m.sample_id,
                    "kind": m.kind,
                    "other": m.other_sample_id,
                    "score": m.score,
                    "reason": m.reason,
                    "overridden by": m.overridden_by or "",
                }
                for m in marks
            ]
        )
        picked = st.dataframe(
            frame, hide_index=True, on_select="rerun", selection_mode="single-row", key="diversity_marks"
        )
        if picked and picked.selection.rows:
            mark = marks[picked.selection.rows[0]]
            st.session_state["diversity_sample"] = mark.sample_id
            label = "Restore the mark" if mark.overridden_by else "Override: not a duplicate"
            if st.button(
                label, key="diversity_override", disabled=not can(Action.DECIDE), help=why_not(Action.DECIDE)
            ):
                override_mark(eng, current_actor(), mark.id, undo=bool(mark.overridden_by))
                st.rerun()

# -- the chosen sample ---------------------------------------------------------------------------------

sample_id = st.session_state.get("diversity_sample")
if sample_id is not None:
    try:
        sample, sample_hidden = visible_sample(eng, current_actor(), get_sample(eng, int(sample_id)))
    except KeyError:
        sample, sample_hidden = None, False
    if sample is not None:
        st.divider()
        st.subheader(f"Sample {sample.id}")
        decision = "hidden (blind batch)" if sample_hidden else sample.decision or "undecided"
        st.caption(f"{sample.batch} · {sample.family} · decision {decision}")
        left, right = st.columns([3, 2])
        with left:
            st.markdown("**Prompt**")
            show_untrusted(sample.prompt)
            st.markdown("**Response**")
            show_untrusted(sample.response)
        with right:
            st.markdown("**Diversity marks**")
            for mark in sample.marks:
                st.text(
                    f"{mark['kind']}: {mark['reason']}" + (" (overridden)" if mark["overridden_by"] else "")
                )
            if not sample.marks:
                st.caption("None.")
            if st.button("Open in Samples", icon=":material/open_in_new:", key="diversity_open"):
                st.session_state["open_sample"] = sample.id
                st.switch_page("pages/samples.py")
