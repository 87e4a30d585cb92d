"""Import a batch, a reference set or an evaluation set from JSONL, CSV or Parquet."""

import uuid
from pathlib import Path

import streamlit as st

from curation.auth import Action
from curation.config import DATA_DIR
from curation.jobs import start_job
from pages.common import (
    current_actor,
    engine,
    job_status,
    page_header,
    permitted,
    start_from_page,
)

UPLOAD_DIR = DATA_DIR / "uploads"
KINDS = {
    "Synthetic batch (candidates to curate)": "synthetic",
    "Reference set (real human data)": "real",
    "Evaluation set (for decontamination)": "eval",
}

page_header(
    "Import",
    "One record per line: family, prompt, response, optional reference and metadata. "
    "Imports are all or nothing: a bad line stops the import and changes nothing.",
)

with st.expander("File format", icon=":material/description:"):
    st.markdown(
        """
`{"id": "q1", "family": "math", "prompt": "...", "response": "...", "reference": {"answer": "42"}, "metadata": {}}`

- **family** — `math`, `code`, `instruction` or `open`
- **reference** by family — math `{"answer": str}`; code `{"tests": str, "entry_point": str}`
  (HumanEval `check(candidate)`) or `{"tests": str}` of plain `assert` lines;
  instruction `{"instruction_id_list": [...], "kwargs": [...]}` (IFEval's format)
- CSV and Parquet use the same columns, nested fields as JSON strings.
"""
    )

with st.form("import_form", clear_on_submit=False):
    upload = st.file_uploader("File", type=["jsonl", "ndjson", "json", "csv", "parquet"])
    kind_label = st.radio("Kind of data", list(KINDS), horizontal=True)
    default_name = Path(upload.name).stem if upload else ""
    batch_name = st.text_input("Batch name", placeholder=default_name or "e.g. math-gen-2026-11")
    submitted = st.form_submit_button(
        "Import",
        type="primary",
        icon=":material/upload:",
        **permitted(Action.IMPORT),
    )

if submitted:
    if upload is None:
        st.error("Choose a file to import.")
    else:
        name = (batch_name or Path(upload.name).stem).strip()
        safe_name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(upload.name).name)
        target = UPLOAD_DIR / uuid.uuid4().hex[:12] / safe_name
        target.parent.mkdir(parents=True)
        target.write_bytes(upload.getbuffer())
        params = {"path": str(target), "batch": name, "origin": KINDS[kind_label]}
        start_from_page(lambda: start_job(engine(), current_actor(), "import", params), key="import_job")

if "import_job" in st.session_state:
    st.subheader("Progress")
    job_status(
        st.session_state["import_job"],
        key="import_job",
        on_success=lambda job: st.page_link(
            "pages/samples.py", label="Browse the samples", icon=":material/table_rows:"
        ),
    )
