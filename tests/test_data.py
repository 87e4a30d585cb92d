from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest

from curation.data import record_dict
from curation.store.models import as_utc


@dataclass
class Inner:
    name: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Report:
    total: int
    parts: list[Inner]
    internal: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.parts)


def test_record_dict_is_asdict_without_options() -> None:
    report = Report(3, [Inner("a", {"x": 1})], [9])
    assert record_dict(report) == asdict(report)


def test_record_dict_adds_derived_leaves_out_internal_and_copies() -> None:
    report = Report(3, [Inner("a", {"x": 1})], [9])
    out = record_dict(report, derived=("size",), exclude=("internal",))
    assert out == {"total": 3, "parts": [{"name": "a", "counts": {"x": 1}}], "size": 1}
    out["parts"][0]["counts"]["x"] = 2
    assert report.parts[0].counts == {"x": 1}


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4), datetime(2026, 1, 2, 3, 4, tzinfo=UTC)),
        (datetime(2026, 1, 2, 3, 4, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, tzinfo=UTC)),
        (
            datetime(2026, 1, 2, 5, 4, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        ),
    ],
)
def test_as_utc_reads_naive_moments_as_utc(moment: datetime, expected: datetime) -> None:
    assert as_utc(moment) == expected
    assert as_utc(moment).tzinfo is not None
