"""The command line acts as a named user (`--as NAME` or ASSAY_USER), `users` manages
accounts, and passwords are stored only as argon2id hashes. Real subprocesses, real
stores, sign-in on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from curation.auth import AUTH_ENV, USER_ENV, Role, authenticate, list_users
from curation.config import PROJECT_ROOT
from curation.store import open_store, session_scope
from curation.store.models import Base, User
from tests.auth.test_roles import row_counts
from tests.helpers import sample_records, write_jsonl

pytestmark = pytest.mark.auth

PASSWORDS = {"root": "Root-Secret-4711", "rita": "Rita-Reviews-0815", "vic": "Vic-Only-Looks-99"}


def run(*args: str, db: str, user: str | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (AUTH_ENV, USER_ENV)}
    if user is not None:
        env[USER_ENV] = user
    return subprocess.run(
        [sys.executable, "-m", "curation", "--db", db, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=300,
    )


def add(db: str, name: str, role: str, *actor: str) -> subprocess.CompletedProcess:
    return run("users", "add", name, "--role", role, "--password-stdin", *actor, db=db, stdin=PASSWORDS[name] + "\n")


@pytest.fixture
def workspace(store_url: str) -> str:
    """root (admin, the first user, added without --as), rita (reviewer), vic (viewer)."""
    for name, role, actor in (("root", "admin", ()), ("rita", "reviewer", ("--as", "root")), ("vic", "viewer", ("--as", "root"))):
        done = add(store_url, name, role, *actor)
        assert done.returncode == 0, done.stderr
    return store_url


def dump(url: str) -> str:
    """Every value of every table, as text."""
    engine = open_store(url)
    with session_scope(engine, write=False) as session:
        return "\n".join(
            repr(tuple(row)) for table in Base.metadata.sorted_tables for row in session.execute(select(table))
        )


def test_passwords_are_stored_only_as_argon2id_hashes(workspace):
    text = dump(workspace)
    for password in PASSWORDS.values():
        assert password not in text
    engine = open_store(workspace)
    with session_scope(engine, write=False) as session:
        hashes = dict(session.execute(select(User.name, User.password_hash)).all())
    assert set(hashes) == set(PASSWORDS)
    assert all(value.startswith("$argon2id$") for value in hashes.values())
    assert len(set(hashes.values())) == len(hashes)  # salted
    assert authenticate(engine, "rita", PASSWORDS["rita"]).role is Role.REVIEWER
    assert authenticate(engine, "rita", PASSWORDS["vic"]) is None


def test_the_first_user_must_be_an_admin(store_url):
    done = add(store_url, "vic", "viewer")
    assert done.returncode != 0
    assert "the first user of a workspace must be an admin" in done.stderr
    assert list_users(open_store(store_url)) == []


def test_only_an_admin_manages_users(workspace):
    engine = open_store(workspace)
    before = row_counts(engine)
    for args in (("users", "set-role", "vic", "admin"), ("users", "disable", "root")):
        done = run(*args, "--as", "rita", db=workspace)
        assert done.returncode == 3, done.stderr
        assert "permission denied: reviewer 'rita' may not manage users" in done.stderr
    done = add(workspace, "rita", "admin", "--as", "vic")
    assert done.returncode != 0 and "may not manage users" in done.stderr
    assert row_counts(engine) == before
    assert run("users", "set-role", "vic", "reviewer", "--as", "root", db=workspace).returncode == 0
    assert run("users", "disable", "rita", db=workspace, user="root").returncode == 0
    users = {u.name: u for u in list_users(engine)}
    assert users["vic"].role is Role.REVIEWER and users["rita"].disabled
    listed = run("users", "list", db=workspace).stdout
    assert "rita" in listed and "disabled" in listed
    assert run("users", "list", "--as", "rita", db=workspace).returncode == 0  # reading needs no user
    # ...but a disabled user cannot act:
    done = run("import", "x.jsonl", "--batch", "x", "--as", "rita", db=workspace)
    assert done.returncode == 2 and "no enabled user named 'rita'" in done.stderr


def test_a_user_changes_their_own_password_only(workspace):
    engine = open_store(workspace)
    done = run("users", "passwd", "vic", "--password-stdin", "--as", "vic", db=workspace, stdin="Vic-New-Password-1\n")
    assert done.returncode == 0, done.stderr
    assert authenticate(engine, "vic", "Vic-New-Password-1") is not None
    done = run("users", "passwd", "rita", "--password-stdin", "--as", "vic", db=workspace, stdin="Hijacked-12345\n")
    assert done.returncode == 3 and "may not manage users" in done.stderr
    assert authenticate(engine, "rita", PASSWORDS["rita"]) is not None
    assert "Vic-New-Password-1" not in dump(workspace)


def test_a_command_that_writes_needs_a_named_user(workspace, tmp_path: Path):
    engine = open_store(workspace)
    before = row_counts(engine)
    done = run("import", str(write_jsonl(tmp_path / "a.jsonl", sample_records(3))), "--batch", "a", db=workspace)
    assert done.returncode == 2
    assert "name the acting user with --as NAME or ASSAY_USER=NAME" in done.stderr
    assert row_counts(engine) == before


@pytest.mark.parametrize("how", ["--as before", "--as after", "ASSAY_USER"])
def test_a_viewer_is_refused_import_export_and_job_control_and_nothing_changes(workspace, tmp_path: Path, how):
    records = write_jsonl(tmp_path / "a.jsonl", sample_records(3))
    assert run("import", str(records), "--batch", "base", "--as", "root", db=workspace).returncode == 0
    engine = open_store(workspace)
    before = row_counts(engine)
    commands = [
        ("import", str(records), "--batch", "other"),
        ("export", "--out", str(tmp_path / "out")),
        ("cancel", "1"),
        ("verify", "--batch", "base"),
    ]
    for command in commands:
        if how == "--as before":
            done = run("--as", "vic", *command, db=workspace)
        elif how == "--as after":
            done = run(*command, "--as", "vic", db=workspace)
        else:
            done = run(*command, db=workspace, user="vic")
        assert done.returncode == 3, (command, done.stdout, done.stderr)
        assert "permission denied: viewer 'vic' may not" in done.stderr, command
    assert row_counts(engine) == before
    assert not (tmp_path / "out").exists()


def test_a_reviewer_may_not_export_but_an_admin_may(workspace, tmp_path: Path):
    records = write_jsonl(tmp_path / "a.jsonl", sample_records(3))
    assert run("import", str(records), "--batch", "base", db=workspace, user="root").returncode == 0
    done = run("export", "--out", str(tmp_path / "r"), "--as", "rita", db=workspace)
    assert done.returncode == 3 and "reviewer 'rita' may not export" in done.stderr
    assert not (tmp_path / "r").exists()


def test_an_unknown_user_is_refused(workspace):
    done = run("cancel", "1", "--as", "nobody", db=workspace)
    assert done.returncode == 2 and "no enabled user named 'nobody'" in done.stderr
