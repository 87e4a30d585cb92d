"""Generate candidate batches with a teacher: an OpenAI-compatible endpoint or the
offline simulated teacher. Widgets only; the work is in curation.generation."""

import hashlib
from datetime import date
from functools import partial
from pathlib import Path

import streamlit as st

from curation.auth import Action
from curation.config import DATA_DIR
from curation.generation.estimate import estimate_generation
from curation.generation.launch import (
    math_datasets,
    needs_session_key,
    resume_generation,
    source_choices,
    start_generation,
)
from curation.generation.params import CONVERSATION_FAMILIES, MAX_TURNS
from curation.generation.plan import render_preview
from curation.generation.run import teacher_models
from curation.generation.templates import TemplateError, allowed_variables, default_template
from curation.jobs import cancel_job, get_job, list_jobs, reap_dead_jobs
from curation.teachers.base import TeacherError
from curation.teachers.simulated import LABEL as SIMULATED_LABEL
from pages.common import (
    current_actor,
    engine,
    page_header,
    permitted,
    show_untrusted,
    start_from_page,
)

UPLOAD_DIR = DATA_DIR / "uploads"
FAMILIES = {"Math": "math", "Code": "code", "Instruction following": "instruction", "Open-ended": "open"}
MODES = {"Solve given problems": "solve", "Teacher writes the problem too": "write"}
TEACHERS = {SIMULATED_LABEL: "simulated", "OpenAI-compatible endpoint": "openai"}
KEY_SOURCES = ("From an environment variable", "Enter a key for this session")
ESTIMATE_HELP = (
    "Prompt tokens are estimated from the prompts' length, answers counted at max tokens; slots that "
    "failed in an earlier run of this batch are asked for again and counted."
)
FEW_SHOT = {"None": None, "From the reference set": "reference", "From accepted samples": "accepted"}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _saved_upload(upload) -> str:  # noqa: ANN001 - a Streamlit UploadedFile
    data = upload.getvalue()
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(upload.name).name)
    target = UPLOAD_DIR / hashlib.sha256(data).hexdigest()[:16] / safe
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return str(target)


page_header(
    "Generate",
    "Candidates from a teacher: any OpenAI-compatible endpoint, or the offline simulated teacher for demos. "
    "Runs in the background; every response is saved as it arrives, and a stopped run resumes where it left off.",
)

# -- what ---------------------------------------------------------------------------------
st.subheader("What to generate")
left, right = st.columns(2)
family = FAMILIES[left.selectbox("Task family", list(FAMILIES), key="gen_family")]
mode = MODES[right.radio("Mode", list(MODES), key="gen_mode", horizontal=True)]
choices = source_choices(family, mode)
source_label = st.radio(
    "Problems", [label for label, _ in choices], key=f"gen_source_{family}_{mode}", horizontal=True
)
source: dict = {"kind": dict(choices)[source_label]}
if source["kind"] == "reasoning_gym":
    left, right = st.columns([3, 1])
    datasets = left.multiselect(
        "reasoning-gym datasets", math_datasets(), default=["basic_arithmetic"], key="gen_rg"
    )
    size = right.number_input("Problems per dataset", 1, 100_000, 50, key="gen_rg_size")
    source["datasets"] = {name: int(size) for name in datasets}
elif source["kind"] == "humaneval":
    source["limit"] = int(st.number_input("Problems", 1, 164, 40, key="gen_he_limit"))
elif source["kind"] == "file":
    upload = st.file_uploader(
        "Problem file (interchange format: family, prompt, optional reference; responses are ignored)",
        type=["jsonl", "ndjson", "json", "csv", "parquet"],
        key="gen_file",
    )
    if upload is not None:
        source["path"] = _saved_upload(upload)
else:
    source["count"] = int(st.number_input("Problems", 1, 100_000, 60, key=f"gen_count_{source['kind']}"))
left, middle, right = st.columns(3)
n = int(left.number_input("Candidates per problem", 1, 64, 1, key="gen_n"))
seed = int(middle.number_input("Seed", 0, 2**31 - 1, 0, key="gen_seed"))
consistency = right.checkbox(
    "Self-consistency",
    key="gen_consistency",
    disabled=family != "math",
    help="Math: record the majority answer and the agreement rate over the candidates of each problem "
    "(in write mode, the written problem is solved again by the other candidates).",
)
turns = 1
if family in CONVERSATION_FAMILIES and mode == "solve":
    turns = int(
        left.number_input(
            "Turns per conversation",
            1,
            MAX_TURNS,
            1,
            key="gen_turns",
            help="Above 1, the teacher also plays the user and writes each follow-up; the whole "
            "conversation is stored and reviewed as a transcript.",
        )
    )

# -- teacher ------------------------------------------------------------------------------
st.subheader("Teacher")
teacher_kind = TEACHERS[st.radio("Teacher", list(TEACHERS), key="gen_teacher", horizontal=True)]
api_key = None
if teacher_kind == "simulated":
    st.info(
        "The simulated teacher is not a model: it answers offline from known solutions and injects realistic "
        "faults at the chosen rate, recording each one in the sample's metadata. Everything it makes is labelled "
        "simulated.",
        icon=":material/smart_toy:",
    )
    fault_rate = st.slider("Injected fault rate", 0.0, 1.0, 0.2, 0.05, key="gen_fault_rate")
    teacher = {"kind": "simulated", "fault_rate": fault_rate, "api_key_env": None}
    prices: dict = {}
    threshold = 0.5
    batch_api, max_cost = False, None
else:
    left, right = st.columns(2)
    base_url = left.text_input("Base URL", placeholder="https://api.openai.com/v1", key="gen_base_url")
    model = right.text_input("Model", placeholder="e.g. gpt-4o-mini", key="gen_model")
    key_source = st.radio("API key", KEY_SOURCES, key="gen_key_source", horizontal=True)
    api_key_env = "OPENAI_API_KEY"
    if key_source == KEY_SOURCES[0]:
        api_key_env = st.text_input("Environment variable", value="OPENAI_API_KEY", key="gen_key_env").strip()
    else:
        api_key = (
            st.text_input(
                "API key",
                type="password",
                key="gen_session_key",
                help="Kept only in this browser session's memory and handed to the worker process through its "
                "environment. Never stored, logged or put in job parameters.",
            )
            or None
        )
    with st.expander("Sampling, limits and prices", icon=":material/tune:"):
        left, middle, right = st.columns(3)
        temperature = left.slider("Temperature", 0.0, 2.0, 0.7, 0.05, key="gen_temperature")
        top_p = middle.slider("Top-p", 0.0, 1.0, 1.0, 0.05, key="gen_top_p")
        max_tokens = int(right.number_input("Max tokens", 1, 200_000, 1024, key="gen_max_tokens"))
        teacher_seed = middle.number_input(
            "Sampling seed (optional)", 0, 2**31 - 1, value=None, key="gen_teacher_seed"
        )
        timeout = left.number_input("Timeout per request (s)", 1.0, 3600.0, 60.0, key="gen_timeout")
        concurrency = int(right.number_input("Max concurrency", 1, 1024, 16, key="gen_concurrency"))
        system_prompt = st.text_input("System prompt (replaces the template's)", key="gen_system_prompt")
        price_in = left.number_input("$ per million prompt tokens", 0.0, 1000.0, 0.0, key="gen_price_in")
        price_out = middle.number_input(
            "$ per million completion tokens", 0.0, 1000.0, 0.0, key="gen_price_out"
        )
        threshold = right.slider(
            "Stop when this share of recent requests fails", 0.05, 1.0, 0.5, 0.05, key="gen_threshold"
        )
        batch_api = left.checkbox(
            "Use the Batch API",
            key="gen_batch_api",
            help="Upload the requests as a file and let the provider run them as a batch (/v1/files + "
            "/v1/batches): cheaper and slower. Failed and expired requests are sent again; a resume "
            "re-attaches to the batch in flight.",
        )
        price_batch_in = middle.number_input(
            "Batch $ per million prompt tokens", 0.0, 1000.0, value=None, key="gen_price_batch_in"
        )
        price_batch_out = right.number_input(
            "Batch $ per million completion tokens", 0.0, 1000.0, value=None, key="gen_price_batch_out"
        )
        max_cost = left.number_input(
            "Spend cap ($, empty: none)",
            0.0,
            1_000_000.0,
            value=None,
            key="gen_max_cost",
            help="Counted from the real usage of the answers; nothing more is sent once the next request "
            "could cross it. A resume with a higher cap asks only for what is missing.",
        )
    teacher = {
        "kind": "openai",
        "base_url": base_url.strip(),
        "model": model.strip(),
        "api_key_env": api_key_env or None,
        "temperature": temperature,
        "top_p": top_p if top_p < 1.0 else None,
        "max_tokens": max_tokens,
        "seed": int(teacher_seed) if teacher_seed is not None else None,
        "timeout": float(timeout),
        "concurrency": concurrency,
        "system_prompt": system_prompt or None,
    }
    prices = {"prompt_per_million": price_in, "completion_per_million": price_out}
    if price_batch_in is not None:
        prices["batch_prompt_per_million"] = price_batch_in
    if price_batch_out is not None:
        prices["batch_completion_per_million"] = price_batch_out
    if st.button("Test connection", icon=":material/lan:", key="gen_test_connection"):
        try:
            models = teacher_models(teacher, api_key=api_key)
        except (TeacherError, ValueError) as exc:
            st.error(f"Connection failed: {exc}", icon=":material/error:")
        else:
            st.success(f"Connected: {len(models)} model(s) available.", icon=":material/check_circle:")
            st.caption(", ".join(models[:50]) + (" …" if len(models) > 50 else ""))
            if teacher["model"] and teacher["model"] not in models:
                st.warning(f"The endpoint does not list the model {teacher['model']!r}.")

# -- prompt -------------------------------------------------------------------------------
st.subheader("Prompt")
template = default_template(family, mode)
system = st.text_area("System message", value=template.system or "", key=f"gen_tpl_system_{family}_{mode}")
user = st.text_area("User message", value=template.user, height=170, key=f"gen_tpl_user_{family}_{mode}")
st.caption(
    "Variables: "
    + ", ".join(f"`{{{name}}}`" for name in allowed_variables(mode))
    + ". Write `{{` and `}}` for literal braces around a word."
)
with st.expander("Diversity levers", icon=":material/diversity_3:"):
    topics = _lines(st.text_area("Seed topics (one per line)", key="gen_topics"))
    personas = _lines(st.text_area("Personas (one per line)", key="gen_personas"))
    difficulty = st.multiselect("Difficulty", ["easy", "medium", "hard"], key="gen_difficulty")
    left, right = st.columns(2)
    few_shot = FEW_SHOT[left.radio("Few-shot examples", list(FEW_SHOT), key="gen_few_shot", horizontal=True)]
    few_shot_k = int(right.number_input("Examples per prompt", 1, 16, 2, key="gen_few_shot_k"))
levers: dict = {}
if topics:
    levers["topics"] = topics
if personas:
    levers["personas"] = personas
if difficulty:
    levers["difficulty"] = difficulty
if few_shot:
    levers["few_shot"] = {"from": few_shot, "k": few_shot_k}

batch = st.text_input(
    "Batch name", value=f"{family} {mode} {date.today():%Y-%m-%d}", key=f"gen_batch_{family}_{mode}"
)
params = {
    "batch": batch.strip(),
    "family": family,
    "mode": mode,
    "source": source,
    "teacher": teacher,
    "template": {"system": system or None, "user": user},
    "levers": levers,
    "n": n,
    "seed": seed,
    "consistency": bool(consistency and family == "math"),
    "turns": turns,
    "prices": prices,
    "error_rate_threshold": threshold,
    "batch_api": batch_api,
    "max_cost": max_cost,
}

ready = True
with st.expander("Preview of the first prompt", expanded=True, icon=":material/visibility:"):
    if source["kind"] == "file" and "path" not in source:
        st.caption("Choose a problem file to preview its first prompt.")
        ready = False
    else:
        try:
            for message in render_preview(params, engine(), index=0):
                st.caption(message["role"])
                show_untrusted(message["content"])
        except (TemplateError, ValueError, KeyError, FileNotFoundError) as exc:
            st.error(str(exc.args[0] if exc.args else exc), icon=":material/error:")
            ready = False
if ready and teacher["kind"] == "openai":
    try:
        st.caption(estimate_generation(engine(), params).describe().capitalize(), help=ESTIMATE_HELP)
    except (TemplateError, ValueError, KeyError, FileNotFoundError) as exc:
        st.caption(f"No cost estimate: {exc}")

if st.button(
    "Start generation",
    type="primary",
    icon=":material/play_arrow:",
    **permitted(Action.GENERATE, blocked=not ready),
    key="gen_start",
):
    try:
        st.session_state["gen_pending_job"] = start_generation(
            engine(), current_actor(), params, api_key=api_key
        )
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")

# -- progress -----------------------------------------------------------------------------
pending = st.session_state.pop("gen_pending_job", None)
if pending is not None:
    st.session_state["generate_job"] = pending
    st.session_state["gen_run_select"] = pending
recent = list_jobs(engine(), limit=20, kind="generate")
if recent:
    st.subheader("Runs")
    ids = [job.id for job in recent]
    titles = {job.id: f"#{job.id} {job.title} — {job.state}" for job in recent}
    if st.session_state.get("gen_run_select") not in ids:
        st.session_state["gen_run_select"] = ids[0]
    st.session_state["generate_job"] = st.selectbox(
        "Run", ids, format_func=lambda job_id: titles[job_id], key="gen_run_select"
    )


@st.fragment(run_every=1.0)
def progress_panel(job_id: int) -> None:
    eng = engine()
    reap_dead_jobs(eng)
    job = get_job(eng, job_id)
    counters = job.counters or {}
    st.progress(job.fraction or 0.0, text=job.message or job.state)
    cols = st.columns(6)
    cols[0].metric("Done", f"{counters.get('done', job.progress_done):,}")
    cols[1].metric("Failed", f"{counters.get('failed', 0):,}")
    cols[2].metric("Retrying", f"{counters.get('retrying', 0):,}")
    cols[3].metric("Tokens", f"{counters.get('prompt_tokens', 0) + counters.get('completion_tokens', 0):,}")
    cols[4].metric("Cost", f"${counters.get('cost', 0.0):,.4f}")
    eta = counters.get("eta_seconds")
    cols[5].metric("ETA", f"{eta:,.0f} s" if eta is not None and job.active else "—")
    latency = counters.get("latency_ms") or {}
    if latency.get("p50") is not None:
        st.caption(
            f"latency p50 {latency['p50']:.0f} ms · p90 {latency['p90']:.0f} ms · p99 {latency['p99']:.0f} ms · "
            f"concurrency {counters.get('concurrency', '—')} · rate-limited {counters.get('rate_limited', 0)} · "
            f"cached {counters.get('cached', 0)} · truncated {counters.get('truncated', 0)}"
        )
    batch_api = counters.get("batch_api")
    if batch_api:
        st.caption(
            f"Batch API: {batch_api['provider_batches']} provider batches ({batch_api['open']} running) · "
            f"{batch_api['submitted']:,} requests submitted, {batch_api['resubmitted']:,} of them again · "
            f"expired {batch_api['expired']:,} · failed {batch_api['failed']:,}"
        )
    if counters.get("max_cost") is not None:
        st.caption(
            f"spend cap ${counters['max_cost']:g} · reserved for requests in flight ${counters['reserved_cost']:,.4f}"
        )
    if counters.get("failures"):
        st.caption("failures by kind: " + ", ".join(f"{k} {v}" for k, v in counters["failures"].items()))
    if job.active:
        if st.button(
            "Cancel",
            icon=":material/stop:",
            **permitted(Action.MANAGE_JOBS, blocked=job.cancel_requested),
            key=f"gen_cancel_{job_id}",
        ):
            cancel_job(eng, current_actor(), job_id)
            st.rerun(scope="fragment")
        return
    if job.state == "succeeded":
        st.success(
            f"Batch {job.result.get('batch')!r} is {job.result.get('status')}: {job.result.get('ok', 0):,} samples"
            f" ({job.result.get('failed', 0):,} failed). Browse them on the Samples page.",
            icon=":material/check_circle:",
        )
        return
    st.error(job.error or job.message or job.state, icon=":material/error:")
    key = None
    if needs_session_key(job.params):
        key = (
            st.text_input("API key for the resumed run", type="password", key=f"gen_resume_key_{job_id}")
            or None
        )
    if st.button(
        "Resume",
        icon=":material/replay:",
        key=f"gen_resume_{job_id}",
        **permitted(Action.GENERATE),
    ):
        resume = partial(resume_generation, eng, current_actor(), job_id, api_key=key)
        if start_from_page(resume, key="gen_pending_job") is not None:
            st.rerun()


if st.session_state.get("generate_job"):
    progress_panel(st.session_state["generate_job"])
