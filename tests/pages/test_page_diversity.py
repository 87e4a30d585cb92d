"""The Diversity page under streamlit.testing.v1.AppTest, against a real store."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from curation.config import DEMO_DIR, PROJECT_ROOT
from curation.diversity import embed as embed_module
from curation.diversity import projection
from curation.diversity.service import Selection, embed_selection, list_marks, resolve_batch, run_dedup
from curation.io.importer import import_file
from curation.jobs import list_jobs, wait_for_job
from curation.store import open_store
from tests.helpers import ADMIN

APP = str(PROJECT_ROOT / "app.py")
GSM8K = [json.loads(line) for line in (DEMO_DIR / "reference_math.jsonl").read_text().splitlines()]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "id"}) + "\n" for r in records))
    return path


def _narrow(n: int) -> list[dict]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        prompt = f"Sam has {a} marbles. He wins {b} more marbles. How many marbles does he have?"
        if i == 0:
            prompt += " <b>bold?</b> <script>alert(1)</script>"
        out.append({"family": "math", "prompt": prompt, "response": f"{a} + {b} = {a + b}\n#### {a + b}"})
    return out


@pytest.fixture(scope="module", autouse=True)
def embed_cache(tmp_path_factory: pytest.TempPathFactory):
    saved = embed_module.CACHE_DIR
    embed_module.CACHE_DIR = tmp_path_factory.mktemp("embed-cache")
    yield
    embed_module.CACHE_DIR = saved


@pytest.fixture(autouse=True)
def projection_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Fitted UMAP models go to a temporary folder and are forgotten after each test."""
    monkeypatch.setattr(projection, "CACHE_DIR", tmp_path / "projections")
    projection.clear_memory_cache()
    yield
    projection.clear_memory_cache()


@pytest.fixture
def workspace(monkeypatch: pytest.MonkeyPatch, make_store_url, tmp_path: Path) -> Engine:
    """Reference set + a narrowed batch with one copy inside, all embedded."""
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    engine = open_store(url)
    import_file(engine, ADMIN, _write(tmp_path / "ref.jsonl", GSM8K[:40]), "reference: math", origin="real")
    import_file(engine, ADMIN, _write(tmp_path / "narrow.jsonl", _narrow(24) + _narrow(24)[:2]), "narrow")
    embed_selection(engine, Selection())
    return engine


def open_page(**state) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    app.switch_page("pages/diversity.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_page_shows_warnings_metrics_and_plots(workspace: Engine) -> None:
    app = open_page()
    warnings = " ".join(w.value for w in app.warning)
    assert "Vendi score" in warnings and "Coverage" in warnings
    metrics = app.dataframe[0].value
    assert {"vendi", "coverage", "spread", "nn_cosine"} <= set(metrics["metric"])
    assert [t.label for t in app.tabs] == [
        "Map",
        "Neighbours",
        "Tails",
        "Clusters",
        "Generations",
        "Duplicates",
    ]


def test_map_hover_text_is_escaped(workspace: Engine) -> None:
    app = open_page()
    charts = [c for c in app.get("plotly_chart") if "diversity_map" in str(c.proto.id)]
    assert charts, "the map was not drawn"
    spec = json.loads(charts[0].proto.spec)
    hover = [t for trace in spec["data"] for t in trace.get("hovertext", [])]
    assert any("&lt;script&gt;" in t for t in hover)
    assert not any("<script>" in t or "<b>" in t for t in hover)
    assert {trace["type"] for trace in spec["data"]} == {"scattergl"}


def test_selected_sample_opens_with_its_marks(workspace: Engine) -> None:
    run_dedup(workspace, "narrow", scopes=("batch",), semantic=False)
    marks = list_marks(workspace, resolve_batch(workspace, "narrow").id)
    assert marks
    app = open_page(diversity_sample=marks[0].sample_id)
    assert f"Sample {marks[0].sample_id}" in [h.value for h in app.subheader]
    assert any("exact_duplicate" in t.value for t in app.text)


def test_buttons_start_background_jobs(workspace: Engine) -> None:
    app = open_page(reviewer_name="ada")
    app.button(key="diversity_dedup").click().run()
    assert not app.exception
    jobs = list_jobs(workspace)
    assert jobs and jobs[0].kind == "dedup" and jobs[0].params == {"batch": "narrow"}
    done = wait_for_job(workspace, jobs[0].id, timeout=600)
    assert done.state == "succeeded", done.error
    assert done.result["findings"]["exact_duplicate"] == 2


def test_page_without_reference_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, make_store_url, tmp_path: Path
) -> None:
    url = make_store_url("sqlite")
    monkeypatch.setenv("ASSAY_DATABASE_URL", url)
    import_file(open_store(url), ADMIN, _write(tmp_path / "b.jsonl", GSM8K[:3]), "lonely")
    app = open_page()
    assert any("reference set" in i.value for i in app.info)


def _map_spec(app: AppTest) -> dict:
    charts = [c for c in app.get("plotly_chart") if "diversity_map" in str(c.proto.id)]
    assert charts, "the map was not drawn"
    return json.loads(charts[0].proto.spec)


def test_map_on_demand_with_umap_fitted_once(workspace: Engine) -> None:
    app = open_page(diversity_projection="UMAP")
    captions = " ".join(c.value for c in app.caption)
    assert "UMAP fitted on 40 reference samples" in captions and "first time" in captions
    spec = _map_spec(app)
    assert spec["layout"]["xaxis"]["title"]["text"] == "UMAP 1"
    assert sum(len(t["hovertext"]) for t in spec["data"]) == 40 + 26
    app.run()
    assert "UMAP reused from memory" in " ".join(c.value for c in app.caption)
    projection.clear_memory_cache()  # as a new server process would
    app.run()
    assert "UMAP loaded from the cache" in " ".join(c.value for c in app.caption)
    assert not app.error


def test_map_falls_back_to_pca_when_umap_fails(workspace: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projection, "UMAP_MIN_POINTS", 1000)
    app = open_page(diversity_projection="UMAP")
    errors = " ".join(e.value for e in app.error)
    assert "UMAP failed" in errors and "at least 1000 embedded reference samples" in errors
    assert _map_spec(app)["layout"]["xaxis"]["title"]["text"].startswith("PCA 1")
