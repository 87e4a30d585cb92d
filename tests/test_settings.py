from dataclasses import dataclass

import pytest

from curation.export.config import ExportConfig
from curation.settings import from_dict, unknown_keys
from curation.verification.runner import VerifyParams


@dataclass
class Pair:
    left: int = 0
    right: int = 0


def test_from_dict_builds_the_dataclass() -> None:
    assert from_dict(Pair, {"left": 1}, "pair settings") == Pair(left=1)


def test_unknown_keys_are_named_sorted() -> None:
    assert unknown_keys({"zeta": 1, "left": 2, "alpha": 3}, Pair) == ["alpha", "zeta"]
    with pytest.raises(ValueError, match="^unknown pair settings: alpha, zeta$"):
        from_dict(Pair, {"zeta": 1, "left": 2, "alpha": 3}, "pair settings")


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (ExportConfig, "unknown export parameters: colour"),
        (VerifyParams, "unknown verification settings: colour"),
    ],
)
def test_export_and_verification_settings_share_the_rule(cls: type, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        cls.from_dict({"colour": "red"})
