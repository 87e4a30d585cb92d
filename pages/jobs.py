"""Every background job: progress, errors, cancel, resume."""

import pandas as pd
import streamlit as st

from curation.auth import Action
from curation.jobs import cancel_job, list_jobs, resume_job
from pages.common import (
    STATE_ICONS,
    current_actor,
    engine,
    page_header,
    permitted,
    start_from_page,
)

page_header(
    "Jobs",
    "Long work runs in worker processes. A job whose worker died is marked failed, with the reason, and can be resumed.",
)


@st.fragment(run_every=2.0)
def jobs_table() -> None:
    eng = engine()
    jobs = list_jobs(eng, limit=100)
    if not jobs:
        st.info("No jobs yet.", icon=":material/info:")
        return
    frame = pd.DataFrame(
        [
            {
                "id": job.id,
                "kind": job.kind,
                "title": job.title,
                "state": job.state,
                "progress": job.fraction
                if job.fraction is not None
                else (1.0 if job.state == "succeeded" else 0.0),
                "message": job.error or job.message,
                "started": job.started_at,
                "finished": job.finished_at,
                "resumes": job.resumed_from,
            }
            for job in jobs
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn(
                "progress", min_value=0, max_value=1, format="percent"
            ),
            "started": st.column_config.DatetimeColumn(format="HH:mm:ss"),
            "finished": st.column_config.DatetimeColumn(format="HH:mm:ss"),
        },
    )
    active = [job for job in jobs if job.active]
    stopped = [job for job in jobs if job.state in ("failed", "cancelled")]
    cols = st.columns(2)
    with cols[0]:
        if active:
            target = st.selectbox(
                "Running job", active, format_func=lambda j: f"{j.id}: {j.title}", key="cancel_pick"
            )
            if st.button(
                "Cancel job",
                icon=":material/stop:",
                key="cancel_job",
                **permitted(Action.MANAGE_JOBS),
            ):
                cancel_job(eng, current_actor(), target.id)
                st.toast(f"Asked job {target.id} to stop.")
    with cols[1]:
        if stopped:
            target = st.selectbox(
                "Failed or cancelled job",
                stopped,
                format_func=lambda j: f"{STATE_ICONS.get(j.state, '')} {j.id}: {j.title}",
                key="resume_pick",
            )
            if st.button(
                "Resume job",
                icon=":material/replay:",
                key="resume_job",
                **permitted(Action.MANAGE_JOBS),
            ):
                new_id = start_from_page(
                    lambda: resume_job(eng, current_actor(), target.id), key="resumed_job"
                )
                if new_id is not None:
                    st.toast(f"Started job {new_id}; it only does what is missing.")


jobs_table()
