"""Export a mixed dataset (accepted synthetic + real) with provenance, a manifest and a
dataset card; the reconciliation of every batch and the cost per accepted sample."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from curation.auth import Action
from curation.config import database_url, default_export_dir
from curation.data import FAMILIES
from curation.export import ExportConfig, plan_export, reason_label
from curation.export.archive import archive_export
from curation.export.reconcile import cost_table, list_exports, reconcile
from curation.io.writers import WRITERS
from curation.jobs import get_job, start_job
from curation.review.blind import NOTICE, hidden_batch_ids
from curation.store.queries import list_batches
from pages.common import (
    batch_multiselect,
    current_actor,
    engine,
    explain_refusal,
    job_status,
    page_header,
    permitted,
    reviewer,
    show_untrusted,
    split_by_origin,
    start_from_page,
)

page_header(
    "Export",
    "Accepted synthetic samples mixed with real data; every row carries its provenance: source, batch, teacher, "
    "verdicts, reviewer decision.",
)

eng = engine()
if hidden_batch_ids(eng, current_actor()):
    explain_refusal(Action.EXPORT)
    # The plan, its counts and the reconciliation are all made of verdicts and decisions;
    # exporting is for admins, who see every batch.
    st.info(f"{NOTICE}: the export plan is shown to admins only.", icon=":material/visibility_off:")
    st.stop()
batches = list_batches(eng)
synthetic, real, evals = split_by_origin(batches, "synthetic", "real", "eval")
if not synthetic and not real:
    st.info("Nothing to export yet.", icon=":material/info:")
    st.stop()


@st.cache_data(ttl=10, show_spinner="Planning the export…")
def preview(config_json: str, url: str) -> dict:
    """The plan's summary (cached briefly: the preview reruns on every widget change)."""
    plan = plan_export(eng, ExportConfig.from_dict(json.loads(config_json)))
    return {
        "summary": plan.summary(),
        "dropped": plan.dropped_table(),
        "examples": plan.contamination_examples,
    }


@st.cache_data(ttl=10, show_spinner="Reconciling…")
def reconciliation(url: str, export_id: int | None) -> dict:
    """The reconciliation table, its problems and the cost tables (cached briefly)."""
    report = reconcile(eng, export_id=export_id)
    return {"table": report.table(), "problems": report.problems(), "costs": cost_table(eng)}


export_tab, reconcile_tab = st.tabs(["Export", "Reconciliation and cost"])

with export_tab:
    left, right = st.columns(2)
    with left:
        chosen = batch_multiselect(
            "Synthetic batches",
            {b.name: b.accepted for b in synthetic},
            "accepted",
            placeholder="All synthetic batches",
            key="export_batches",
        )
        families = st.multiselect("Families", FAMILIES, placeholder="All families", key="export_families")
        reference = batch_multiselect(
            "Reference sets (real data)",
            {b.name: b.samples for b in real},
            "rows",
            all_by_default=True,
            help_text="All real rows of these sets are kept (accumulate rule).",
            key="export_reference",
        )
        eval_sets = batch_multiselect(
            "Evaluation sets (decontamination)",
            {b.name: b.samples for b in evals},
            "rows",
            all_by_default=True,
            help_text="Rows sharing a word 13-gram with these are dropped.",
            key="export_evals",
        )
    with right:
        share = st.number_input(
            "Synthetic share (%)",
            min_value=0.0,
            max_value=100.0,
            value=None,
            step=5.0,
            placeholder="keep every accepted sample",
            help="Share of synthetic rows in the export. All real rows are kept; synthetic rows are sampled.",
            key="export_share",
        )
        family_shares: dict[str, float] = {}
        with st.expander("Per-family shares"):
            for family in families or FAMILIES:
                value = st.number_input(
                    f"{family} (%)",
                    min_value=0.0,
                    max_value=100.0,
                    value=None,
                    step=5.0,
                    placeholder="overall share",
                    key=f"export_share_{family}",
                )
                if value is not None:
                    family_shares[family] = value / 100
        allow_drop = st.checkbox(
            "Allow dropping real rows to reach the share",
            key="export_allow_drop",
            help="Off by default: real data is never dropped silently. Recorded in the manifest.",
        )
        seed = st.number_input("Seed", min_value=0, value=0, step=1, key="export_seed")
        validation = st.number_input(
            "Validation fraction", min_value=0.0, max_value=0.9, value=0.0, step=0.05, key="export_validation"
        )
        fmt = st.selectbox(
            "Format",
            WRITERS.names(),
            index=WRITERS.names().index("jsonl"),
            format_func=lambda name: WRITERS.get(name).description or name,
            key="export_format",
        )
    if "export_out" not in st.session_state:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        st.session_state["export_out"] = str(default_export_dir(database_url()) / f"export-{stamp}")
    out_dir = st.text_input("Output folder", key="export_out")

    config = None
    try:
        config = ExportConfig(
            out=out_dir,
            format=fmt,
            batches=chosen or None,
            families=families or None,
            reference_sets=reference,
            eval_sets=eval_sets,
            synthetic_share=None if share is None else share / 100,
            family_shares=family_shares,
            allow_dropping_real=allow_drop,
            seed=int(seed),
            validation_fraction=float(validation),
            created_by=reviewer(),
        )
        result = preview(json.dumps(config.to_dict(), sort_keys=True), str(eng.url))
    except (ValueError, KeyError) as exc:
        st.error(exc.args[0] if exc.args else str(exc), icon=":material/error:")
        result = None

    if result is not None:
        summary = result["summary"]
        st.subheader("Preview")
        cols = st.columns(4)
        cols[0].metric("Rows", f"{summary['rows']:,}")
        cols[1].metric("Synthetic", f"{summary['synthetic']:,}")
        cols[2].metric("Real", f"{summary['real']:,}")
        share_now = summary["synthetic_share"]
        cols[3].metric("Synthetic share", "—" if share_now is None else f"{share_now:.1%}")
        if summary["families"]:
            st.dataframe(
                pd.DataFrame(
                    [
                        {"family": f, **n, "synthetic share": summary["family_shares"][f]}
                        for f, n in summary["families"].items()
                    ]
                ),
                hide_index=True,
                column_config={"synthetic share": st.column_config.NumberColumn(format="percent")},
            )
        if summary["dropped"] or summary["not_accepted"]:
            rows = [
                {"reason": d["reason"], "synthetic": d["synthetic"], "real": d["real"]}
                for d in result["dropped"]
            ] + [
                {"reason": f"not accepted: {k}", "synthetic": v, "real": 0}
                for k, v in sorted(summary["not_accepted"].items())
            ]
            st.caption("Rows left out, by reason")
            st.dataframe(pd.DataFrame(rows), hide_index=True)
        if result["examples"]:
            with st.expander(f"Contamination examples ({len(result['examples'])})"):
                show_untrusted(
                    "\n".join(f"sample {e['sample_id']}: {e['ngram']}" for e in result["examples"])
                )
        for warning in summary["warnings"]:
            st.warning(warning, icon=":material/warning:")
        if not eval_sets:
            st.page_link(
                "pages/import_data.py", label="Add an evaluation set on Import", icon=":material/upload_file:"
            )
        for error in summary["errors"]:
            st.error(error, icon=":material/error:")
        blocked = bool(summary["errors"]) or summary["rows"] == 0
        if summary["rows"] and not summary["synthetic"]:
            st.warning(
                "No synthetic sample is accepted in this selection: the dataset would be 100 % real data.",
                icon=":material/warning:",
            )
            all_real = st.checkbox("Export it anyway, with real data only", key="export_all_real")
            blocked = blocked or not all_real
    else:
        blocked = True

    go = st.button(
        "Export",
        type="primary",
        icon=":material/download:",
        **permitted(Action.EXPORT, blocked=blocked),
    )
    if go and config is not None:
        start_from_page(lambda: start_job(eng, current_actor(), "export", config.to_dict()), key="export_job")

    if "export_job" in st.session_state:
        job_id = st.session_state["export_job"]
        job_status(job_id, key="export_job", show_executor=True)
        job = get_job(eng, job_id)
        if job.state == "succeeded":
            out = Path(job.result["out_dir"])
            rows = job.result["rows"]
            files = list(job.result["files"])
            st.success(
                f"Wrote {rows:,} row{'s' if rows != 1 else ''} to `{out}` "
                f"({job.result.get('synthetic', rows):,} synthetic, {job.result.get('real', 0):,} real; "
                f"export {job.result['export_id']})",
                icon=":material/check_circle:",
            )
            manifest_path = Path(job.result.get("manifest") or out / "manifest.json")
            manifest = (
                json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
            )
            if manifest:
                st.dataframe(
                    pd.DataFrame(
                        [{"file": name, "sha256": digest} for name, digest in manifest["files"].items()]
                    ),
                    hide_index=True,
                )
                dropped = manifest.get("dropped") or []
                if dropped:
                    st.caption(
                        "Dropped: "
                        + ", ".join(
                            f"{reason_label(d['code'])}: {d.get('synthetic', 0) + d.get('real', 0):,}"
                            for d in dropped
                        )
                    )
            card = job.result.get("card")
            if card and Path(card).is_file():
                with st.expander("Dataset card (README.md)"):
                    show_untrusted(Path(card).read_text(encoding="utf-8"), markdown=True)
            single = len(files) == 1 and (out / files[0]).is_file()
            if single:
                path = out / files[0]
                with open(path, "rb") as handle:
                    st.download_button(
                        f"Download {path.name}", data=handle, file_name=path.name, icon=":material/download:"
                    )
            else:
                extras = [p.name for p in (manifest_path, out / "README.md") if p.is_file()]
                archive = archive_export(out, files + extras)
                with open(archive, "rb") as handle:
                    st.download_button(
                        f"Download {archive.name}",
                        data=handle,
                        file_name=archive.name,
                        mime="application/zip",
                        icon=":material/folder_zip:",
                    )

with reconcile_tab:
    exports = list_exports(eng)
    export_id = None
    if exports:
        labels = {
            e[
                "id"
            ]: f"export {e['id']} · {e['rows']:,} rows · {e['created_at']:%Y-%m-%d %H:%M} · {e['created_by'] or '—'}"
            for e in exports
        }
        export_id = st.selectbox(
            "Against export", list(labels), format_func=labels.get, key="reconcile_export"
        )
    report = reconciliation(str(eng.url), export_id)
    st.caption(
        "requested → generated → verified → deduplicated → reviewed → exported: each “why fewer” column "
        "explains the drop from the column before it."
    )
    st.dataframe(pd.DataFrame(report["table"]), hide_index=True)
    for problem in report["problems"]:
        st.error(problem, icon=":material/error:")
    costs = report["costs"]
    st.subheader("Cost per accepted sample")
    if costs["by_batch"]:
        money = st.column_config.NumberColumn(format="%.6f")
        for title, key in (
            ("By batch", "by_batch"),
            ("By teacher", "by_teacher"),
            ("By prompt template", "by_template"),
        ):
            st.caption(title)
            st.dataframe(
                pd.DataFrame(costs[key]), hide_index=True, column_config={"cost_per_accepted": money}
            )
    else:
        st.caption("No generated batch with cost accounting yet.")
