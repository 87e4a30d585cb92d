"""The page tests run the app as the single-user demo does (`ASSAY_AUTH=none`), unless
a test signs in itself (tests/pages/test_sign_in.py removes the variable)."""

from __future__ import annotations

import pytest

from curation.auth import AUTH_ENV


@pytest.fixture(autouse=True)
def sign_in_off(monkeypatch) -> None:
    monkeypatch.setenv(AUTH_ENV, "none")
