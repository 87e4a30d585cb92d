from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from curation.io.writers.base import TABULAR_COLUMNS, WRITERS, Writer
from curation.io.writers.parquet import ParquetWriter


def _features() -> Any:
    from datasets import Features, Value  # heavy: only for this format

    return Features({name: Value("string") for name in TABULAR_COLUMNS})


@WRITERS.register("hf")
class HuggingFaceWriter(Writer):
    """A Hugging Face `datasets` DatasetDict saved with `save_to_disk` (one split per
    folder); columns as in CSV/Parquet. Load it with `datasets.load_from_disk`."""

    name = "hf"
    extension = ""
    description = "Hugging Face dataset folder (DatasetDict, train/validation splits; load_from_disk)"
    folder = True

    def missing_dependencies(self) -> list[str]:
        try:
            import datasets  # noqa: F401  # optional and heavy: only asked when this format is chosen
        except ImportError:
            return ["datasets"]
        return []

    def _dataset(self, rows: Iterable[Any], cache: Path) -> Any:
        """Rows → a Parquet file (one row group at a time) → a memory-mapped Dataset."""
        cache.mkdir(parents=True, exist_ok=True)
        staged = cache / "rows.parquet"
        ParquetWriter().write(rows, staged)
        return self._from_parquet(staged, cache / "arrow")

    def _from_parquet(self, staged: Path, cache: Path) -> Any:
        from datasets import Dataset, disable_progress_bars  # heavy: only for this format

        disable_progress_bars()
        return Dataset.from_parquet(
            str(staged), features=_features(), cache_dir=str(cache), keep_in_memory=False
        )

    def encode_table(self, rows: Iterable[Any]) -> Any:
        return ParquetWriter().encode_table(rows)

    def write_tables(self, tables: Iterable[Any], path: Path) -> int:
        """One split from encoded tables (the parallel path): staged as Parquet, saved
        under `path`; `dataset_dict.json` beside it lists every split saved so far."""
        cache = Path(tempfile.mkdtemp(prefix=".hf-cache-", dir=path.parent))
        try:
            staged = cache / "rows.parquet"
            ParquetWriter().write_tables(tables, staged)
            dataset = self._from_parquet(staged, cache / "arrow")
            if path.exists():
                shutil.rmtree(path)
            dataset.save_to_disk(str(path))
            rows = dataset.num_rows
            del dataset
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        splits = [p.name for p in sorted(path.parent.iterdir()) if (p / "state.json").is_file()]
        order = {"train": 0, "validation": 1, "test": 2}
        splits.sort(key=lambda name: (order.get(name, 3), name))
        (path.parent / "dataset_dict.json").write_text(json.dumps({"splits": splits}), encoding="utf-8")
        return rows

    def write(self, rows: Iterable[Any], path: Path) -> int:
        return self.write_splits({"train": rows}, path, {"train": "train"})["train"]

    def write_splits(
        self, splits: Mapping[str, Iterable[Any]], out_dir: Path, names: Mapping[str, str]
    ) -> dict[str, int]:
        """Each split is staged as Parquet in a private cache, loaded memory-mapped,
        saved under `out_dir/<split>`, then the cache is removed."""
        out_dir.mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        cache = Path(tempfile.mkdtemp(prefix=".hf-cache-", dir=out_dir))
        try:
            for split, rows in splits.items():
                dataset = self._dataset(rows, cache / split)
                target = out_dir / split
                if target.exists():
                    shutil.rmtree(target)
                dataset.save_to_disk(str(target))
                counts[split] = dataset.num_rows
                del dataset
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        (out_dir / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}), encoding="utf-8")
        return counts

    def load_snippet(self, files: list[str]) -> str:
        return "\n".join(
            [
                "import json",
                "from datasets import load_from_disk",
                "",
                'dataset = load_from_disk("path/to/this/folder")  # a DatasetDict',
                'train = dataset["train"]',
                'provenance = json.loads(train[0]["provenance"])',
            ]
        )
