"""Shared page helpers: cached engine, sidebar, job progress, safe rendering.

Pages stay thin: widgets and plots here and in each page, every decision and
query in `curation`."""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from curation.auth import AUTH_ENV, Action, Actor, auth_disabled, authenticate, open_actor
from curation.auth.accounts import user_count
from curation.auth.sessions import oidc_actor, oidc_signed_in_at, oidc_user_name, session_expired
from curation.config import database_url, redact_url
from curation.data import BatchSummary
from curation.executors import describe_record
from curation.jobs import JobBusy, JobView, cancel_job, get_job, reap_dead_jobs, resume_job
from curation.safety import neutralise_markdown, reveal_bidi
from curation.store import open_store
from pages import navigation_sections

STATE_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/autorenew:",
    "succeeded": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
}


@st.cache_resource(show_spinner="Opening the workspace…")
def _engine_for(url: str) -> Engine:
    return open_store(url)


def engine() -> Engine:
    """The workspace engine (one per process, thread-safe, migrated)."""
    return _engine_for(database_url())


def reviewer() -> str:
    """The reviewer name: the signed-in user's ("" once the sign-in has expired, even in a
    widget callback, which runs before the app's sign-in check), or, with sign-in off,
    the sidebar's."""
    if not auth_disabled():
        actor = current_actor()
        return actor.name if actor is not None else ""
    return (st.session_state.get("reviewer_name") or "").strip()


#: Session state of a sign-in: the acting user and when the sign-in was made.
ACTOR_KEY = "actor"
SIGNED_IN_AT_KEY = "signed_in_at"
_NOTICE_KEY = "sign_in_notice"
_OIDC_SUBJECT_KEY = "oidc_subject"

DEMO_NOTE = f"Sign-in is off ({AUTH_ENV}=none): single-user demo; everyone acts as admin"


def oidc_configured() -> bool:
    """Whether `.streamlit/secrets.toml` has an `[auth]` section (sign-in through OIDC)."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        return False


def _end_session(notice: str | None = None) -> None:
    for key in (ACTOR_KEY, SIGNED_IN_AT_KEY, _OIDC_SUBJECT_KEY, "reviewer_name"):
        st.session_state.pop(key, None)
    if notice:
        st.session_state[_NOTICE_KEY] = notice


def _start_session(actor: Actor, signed_in_at: float | None = None) -> None:
    st.session_state[ACTOR_KEY] = actor
    st.session_state[SIGNED_IN_AT_KEY] = time.time() if signed_in_at is None else signed_in_at
    st.session_state["reviewer_name"] = actor.name


def current_actor() -> Actor | None:
    """The acting user of this browser session, None until someone signs in and again
    once the sign-in is `ASSAY_SESSION_HOURS` old. With `ASSAY_AUTH=none` (the
    single-user demo) it is an admin under the sidebar's name, "local" until one is
    typed: exporting or generating needs no name, deciding asks for one first."""
    if auth_disabled():
        return open_actor(reviewer())
    actor = st.session_state.get(ACTOR_KEY)
    if not isinstance(actor, Actor):
        return None
    if session_expired(st.session_state.get(SIGNED_IN_AT_KEY)):
        _end_session("expired")
        return None
    return actor


def _oidc_claims() -> dict[str, Any] | None:
    """The claims of the OIDC user signed in at the provider (Streamlit's cookie), or None."""
    claims = st.user.to_dict()
    return claims if claims.get("is_logged_in") else None


def _resolve_oidc_actor() -> Actor | None:
    """The acting user from the provider's token (`curation.auth.sessions.oidc_actor`),
    while the token is fresh enough (`ASSAY_SESSION_HOURS` from its issue)."""
    claims = _oidc_claims()
    if claims is None:
        _end_session()
        return None
    actor = current_actor()
    if actor is not None and st.session_state.get(_OIDC_SUBJECT_KEY) == claims.get("sub"):
        return actor
    issued_at = oidc_signed_in_at(claims)
    if issued_at is not None and session_expired(issued_at):
        return None
    actor = oidc_actor(engine(), claims)
    if actor is not None:
        _start_session(actor, issued_at)
        st.session_state[_OIDC_SUBJECT_KEY] = claims.get("sub")
    return actor


def signed_in_actor() -> Actor | None:
    """The acting user, None while nobody is signed in (the app shows the sign-in screen)."""
    if auth_disabled():
        return current_actor()
    if oidc_configured():
        return _resolve_oidc_actor()
    return current_actor()


def _sign_in_with_password() -> None:
    name = st.session_state.get("sign_in_name", "")
    password = st.session_state.get("sign_in_password", "")
    st.session_state["sign_in_password"] = ""
    actor = authenticate(engine(), name, password)
    if actor is None:
        st.session_state[_NOTICE_KEY] = "refused"
        return
    st.session_state.pop(_NOTICE_KEY, None)
    _start_session(actor)


def _local_sign_in() -> None:
    notice = st.session_state.pop(_NOTICE_KEY, None)
    if notice == "expired":
        st.info("Your session expired. Sign in again.", icon=":material/schedule:")
    if user_count(engine()) == 0:
        st.info(
            "This workspace has no accounts yet. Add the first one (an admin) on the command line:\n\n"
            f"`python -m curation users add NAME --role admin`\n\n"
            f"then sign in here. For a single-user demo without accounts, start the app with {AUTH_ENV}=none "
            "(`make run` does).",
            icon=":material/person_add:",
        )
        return
    with st.form("sign_in", enter_to_submit=True):
        st.text_input("Name", key="sign_in_name", autocomplete="username")
        st.text_input("Password", key="sign_in_password", type="password", autocomplete="current-password")
        st.form_submit_button("Sign in", type="primary", on_click=_sign_in_with_password)
    if notice == "refused":
        st.error("Wrong name or password.", icon=":material/block:")


def _oidc_sign_in() -> None:
    claims = _oidc_claims()
    if claims is None:
        if st.button("Sign in", type="primary", icon=":material/login:"):
            st.login()
        return
    issued_at = oidc_signed_in_at(claims)
    if issued_at is not None and session_expired(issued_at):
        st.info("Your session expired. Sign in again.", icon=":material/schedule:")
        if st.button("Sign in again", type="primary", icon=":material/login:"):
            st.login()
        return
    name = oidc_user_name(claims)
    # The token's name is the provider's data: shown neutralised, and quoted in the command.
    st.error(
        f"{neutralise_markdown(name or 'This account')} has no Assay account. Ask an admin to add it "
        "(role admin, reviewer or viewer):",
        icon=":material/person_off:",
    )
    st.code(
        f"python -m curation users add {shlex.quote(name or 'NAME')} --role reviewer --no-password",
        language=None,
    )
    if st.button("Sign out", icon=":material/logout:"):
        st.logout()


def sign_in_screen() -> None:
    """What the app shows instead of its pages until someone signs in."""
    st.title("Assay")
    st.subheader("Sign in")
    if oidc_configured():
        _oidc_sign_in()
    else:
        _local_sign_in()


def _sign_out() -> None:
    _end_session()
    if oidc_configured():
        # No rerun after it: a rerun can drop the browser's redirect to the provider's
        # sign-out before it is sent.
        st.logout()
        st.stop()
    st.rerun()


def can(action: Action) -> bool:
    """Whether the acting user may `action` (False when no one is signed in). The library
    refuses it anyway; pages use this to disable the control and say why (`why_not`)."""
    return why_not(action) is None


def permitted(action: Action, *, blocked: bool = False) -> dict[str, Any]:
    """A control's `disabled` and `help` for `action`: disabled when `blocked` or when the
    acting user may not (the help then says why), e.g. `st.button("Export", **permitted(Action.EXPORT))`."""
    return {"disabled": blocked or not can(action), "help": why_not(action)}


def why_not(action: Action) -> str | None:
    """Why the acting user may not `action` (a sentence for a disabled control's help), or None."""
    actor = current_actor()
    # A decision is stored under a person's name: in the demo, the one typed in the sidebar.
    if actor is None or (action is Action.DECIDE and not reviewer()):
        return f"Sign in (or enter your name in the sidebar) to {action.value}."
    if not actor.can(action):
        return f"Your role ({actor.role.value}) may not {action.value}; ask an admin."
    return None


def explain_refusal(action: Action) -> bool:
    """Show why the acting user may not `action` (an info line) and return False; True if they may."""
    reason = why_not(action)
    if reason is not None:
        st.info(reason, icon=":material/lock:")
    return reason is None


#: The URL query parameter that keeps the reviewer name across reloads and deep links.
REVIEWER_PARAM = "reviewer"


def _confirm_reviewer() -> None:
    st.session_state["reviewer_name"] = st.session_state.get("reviewer_name_input", "").strip()


def _change_reviewer() -> None:
    st.session_state["reviewer_name_input"] = st.session_state.pop("reviewer_name", "")
    st.query_params.pop(REVIEWER_PARAM, None)


def _reviewer_box() -> None:
    """The reviewer name: a text box until a name is confirmed (Enter), then the name and
    a "Change" button. Swapping the box out moves the focus off it, so the review
    shortcuts (n, a, x) act instead of typing into the name. The name goes into the URL
    (`?reviewer=`), so a reload or a deep link keeps it until sign-in arrives."""
    name = reviewer()
    if not name and st.query_params.get(REVIEWER_PARAM, "").strip():
        name = st.session_state["reviewer_name"] = st.query_params[REVIEWER_PARAM].strip()
    if not name:
        st.text_input(
            "Reviewer name",
            key="reviewer_name_input",
            on_change=_confirm_reviewer,
            placeholder="e.g. ada",
            help="Recorded with every decision you make. Required to accept or reject. Press Enter to confirm.",
        )
        return
    if st.query_params.get(REVIEWER_PARAM) != name:
        st.query_params[REVIEWER_PARAM] = name
    st.text(f"Reviewing as {name}")  # plain text: the name may come from a link
    st.button("Change name", key="reviewer_change", icon=":material/edit:", on_click=_change_reviewer)


def sidebar(actor: Actor | None) -> None:
    with st.sidebar:
        st.caption("Workspace")
        st.code(redact_url(database_url()), language=None, wrap_lines=True)
        if auth_disabled():
            st.caption(DEMO_NOTE)
            _reviewer_box()
        elif actor is not None:
            st.text(f"Signed in as {actor.name} ({actor.role.value})")  # plain text: a token's name
            if st.button("Sign out", key="sign_out", icon=":material/logout:"):
                _sign_out()


def require_reviewer() -> str | None:
    name = reviewer()
    if not name:
        st.info("Enter your reviewer name in the sidebar to record decisions.", icon=":material/badge:")
        return None
    return name


#: Longer text is never rendered as markdown: the browser's renderer blocks the tab for
#: seconds on a 200k-character line, where the plain code view stays quick.
MARKDOWN_LIMIT = 20_000


def show_untrusted(
    text: str, *, markdown: bool = False, language: str | None = None, height: int | None = None
) -> None:
    """Show model-written or user-supplied text. Never raw HTML; images are never fetched;
    bidi controls are written out so the screen shows the stored order."""
    if not text:
        st.caption("(empty)")
        return
    text = reveal_bidi(text)
    if markdown and len(text) > MARKDOWN_LIMIT:
        st.caption(f"{len(text):,} characters: too long to render as markdown, shown as plain text.")
        markdown = False
    if markdown:
        st.markdown(neutralise_markdown(text))
    else:
        st.code(text, language=language, wrap_lines=True, height=height)


def show_json(value: Any) -> None:
    st.code(json.dumps(value, indent=2, ensure_ascii=False, default=str), language="json", wrap_lines=True)


def start_from_page(start: Callable[[], int], *, key: str) -> int | None:
    """Run a job start (`start()` returns the new job's id) and remember the id under
    `key`. A start refused because a live job works on the same thing is shown as an
    error (naming that job and how to cancel it), not raised; returns None then."""
    try:
        job_id = start()
    except JobBusy as exc:
        st.error(str(exc), icon=":material/block:")
        return None
    st.session_state[key] = job_id
    return job_id


def _job_summary(job: JobView) -> str:
    if job.progress_total:
        return f"{job.progress_done:,} / {job.progress_total:,}"
    return f"{job.progress_done:,}" if job.progress_done else ""


def executor_caption(job: JobView) -> None:
    """Where a heavy job runs or ran: local worker processes, or the Ray cluster's nodes and CPUs/GPUs."""
    verb = "Runs" if job.active else "Ran"
    st.caption(f"{verb} on {describe_record((job.counters or {}).get('executor'))}")


def job_status(
    job_id: int,
    *,
    key: str,
    on_success: Callable[[JobView], None] | None = None,
    show_executor: bool = False,
) -> None:
    """Live status of one job: a fragment that refreshes itself while the job runs.

    `on_success(job)` renders extra content (inside the fragment) once the job succeeded;
    `show_executor` adds where the job runs (`executor_caption`), for the heavy jobs."""

    @st.fragment(run_every=1.0)
    def _panel() -> None:
        eng = engine()
        reap_dead_jobs(eng)
        try:
            job = get_job(eng, job_id)
        except KeyError:
            st.warning(f"Job {job_id} no longer exists.")
            return
        previous = st.session_state.get(f"{key}_state")
        st.session_state[f"{key}_state"] = job.state
        if previous in ("queued", "running") and not job.active:
            st.rerun()
        label = f"{job.title} — {job.state}"
        if job.state in ("queued", "running"):
            with st.status(label, state="running", expanded=True):
                st.progress(job.fraction or 0.0, text=f"{job.message or 'working…'}  {_job_summary(job)}")
                if show_executor:
                    executor_caption(job)
                if job.counters:
                    st.caption(
                        " · ".join(f"{k}: {v}" for k, v in job.counters.items() if not isinstance(v, dict))
                    )
                if st.button(
                    "Cancel",
                    key=f"{key}_cancel",
                    icon=":material/stop:",
                    **permitted(Action.MANAGE_JOBS, blocked=job.cancel_requested),
                ):
                    cancel_job(eng, current_actor(), job_id)
                    st.rerun(scope="fragment")
        elif job.state == "succeeded":
            with st.status(label, state="complete", expanded=False):
                show_json(job.result)
            if show_executor:
                executor_caption(job)
            if on_success is not None:
                on_success(job)
        else:
            with st.status(label, state="error", expanded=True):
                if job.error:
                    st.error(job.error, icon=":material/error:")
                else:
                    st.write(job.message)
                if show_executor:
                    executor_caption(job)
                if st.button(
                    "Resume",
                    key=f"{key}_resume",
                    icon=":material/replay:",
                    **permitted(Action.MANAGE_JOBS),
                ):
                    if start_from_page(lambda: resume_job(eng, current_actor(), job_id), key=key) is not None:
                        st.rerun()

    _panel()


def split_by_origin(batches: Sequence[BatchSummary], *origins: str) -> tuple[list[BatchSummary], ...]:
    """The batches of each of `origins` ("synthetic", "real", "eval"), in that order."""
    return tuple([b for b in batches if b.origin == origin] for origin in origins)


def batch_multiselect(
    label: str,
    sizes: dict[str, int],
    unit: str,
    *,
    key: str,
    all_by_default: bool = False,
    placeholder: str | None = None,
    help_text: str | None = None,
) -> list[str]:
    """Pick batches by name, each shown with its size (`sizes[name]` `unit`)."""
    return st.multiselect(
        label,
        list(sizes),
        default=list(sizes) if all_by_default else None,
        format_func=lambda name: f"{name} ({sizes[name]:,} {unit})",
        placeholder=placeholder,
        help=help_text,
        key=key,
    )


def titled_table(title: str, rows: list[dict[str, Any]], empty: str, **dataframe_options: Any) -> None:
    """A bold title, then the rows as a table without index, or the caption `empty` when there are none."""
    st.markdown(f"**{title}**")
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, **dataframe_options)
    else:
        st.caption(empty)


_routing = threading.local()


@contextmanager
def routed_by_app() -> Iterator[None]:
    """Marks the page run that app.py routes (a script run is one thread)."""
    _routing.active = True
    try:
        yield
    finally:
        _routing.active = False


def run_app() -> None:
    """The app: page config, workspace, sign-in, `st.navigation` over `PAGES`, sidebar,
    then the chosen page. app.py is just this call.

    Sign-in: with `ASSAY_AUTH=none` there is none (the demo; the sidebar says so);
    with an `[auth]` section in `.streamlit/secrets.toml` people sign in through OIDC
    (`st.login`); otherwise with a local account's name and password."""
    st.set_page_config(page_title="Assay", page_icon="🧪", layout="wide")
    engine()
    actor = signed_in_actor()
    signed_in = auth_disabled() or actor is not None
    # Until someone signs in the navigation is hidden and the page not run, but the URL's
    # page is kept: it opens once the sign-in is made.
    page = st.navigation(navigation_sections(), position="sidebar" if signed_in else "hidden")
    sidebar(actor)
    if not signed_in:
        sign_in_screen()
        return
    with routed_by_app():
        page.run()


def route_through_the_app() -> None:
    """A page script running without app.py is Streamlit's old `pages/` mode, which lasts
    until `st.navigation` first runs in the server process: a deep link opened first on
    a fresh server (and every run under AppTest, which resets the mode). Run the app's
    router here instead, in the same run (so a click or an entered value is not lost), and
    stop this unrouted copy of the page. Public calls only."""
    if not getattr(_routing, "active", False):
        run_app()
        st.stop()


def page_header(title: str, subtitle: str) -> None:
    route_through_the_app()
    st.title(title)
    st.caption(subtitle)
