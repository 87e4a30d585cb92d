"""Export accepted samples with provenance, a manifest and file hashes."""

from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

from curation.config import DEFAULT_EXPORT_DIR
from curation.jobs import get_job, start_job
from curation.samples import list_batches
from curation.writers import WRITERS
from pages.common import engine, job_status, page_header, reviewer

page_header("Export", "Accepted samples, each row carrying its provenance: batch, teacher, verdicts, reviewer decision.")

eng = engine()
synthetic = [b for b in list_batches(eng, origins=("synthetic",))]
accepted = {b.name: b.accepted for b in synthetic}
if not synthetic:
    st.info("Nothing to export yet.", icon=":material/info:")
    st.stop()

with st.form("export_form"):
    chosen = st.multiselect(
        "Batches",
        list(accepted),
        format_func=lambda name: f"{name} ({accepted[name]:,} accepted)",
        placeholder="All batches",
    )
    fmt = st.selectbox("Format", WRITERS.names(), format_func=lambda name: WRITERS.get(name).description or name)
    if "export_out" not in st.session_state:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        st.session_state["export_out"] = str(DEFAULT_EXPORT_DIR / f"export-{stamp}")
    out_dir = st.text_input("Output folder", key="export_out")
    go = st.form_submit_button("Export", type="primary", icon=":material/download:")

selected_total = sum(accepted[name] for name in (chosen or accepted))
st.caption(f"{selected_total:,} accepted samples in the selection.")

if go:
    if selected_total == 0:
        st.warning("No accepted samples in the selection: review some first.")
    else:
        st.session_state["export_job"] = start_job(
            eng,
            "export",
            {"out": out_dir, "batches": chosen, "format": fmt, "created_by": reviewer()},
            created_by=reviewer(),
        )

if "export_job" in st.session_state:
    job_id = st.session_state["export_job"]
    job_status(job_id, key="export_job")
    job = get_job(eng, job_id)
    if job.state == "succeeded":
        out = Path(job.result["out_dir"])
        for name, digest in job.result["files"].items():
            path = out / name
            rows = job.result["rows"]
            st.success(f"Wrote {rows:,} row{'s' if rows != 1 else ''} to `{path}` (sha256 `{digest[:16]}…`)")
            if path.is_file():
                st.download_button(
                    f"Download {name}", data=path.read_bytes(), file_name=name, icon=":material/download:"
                )
