"""One zip of an export folder, for the browser's download button."""

from __future__ import annotations

import zipfile
from pathlib import Path


def archive_export(out_dir: str | Path, files: list[str] | None = None) -> Path:
    """`<out_dir>.zip` holding the export folder (or just `files` of it), made once."""
    out_dir = Path(out_dir)
    target = out_dir.with_name(out_dir.name + ".zip")
    members = (
        sorted(p for p in out_dir.rglob("*") if p.is_file())
        if files is None
        else [out_dir / f for f in files]
    )
    newest = max((p.stat().st_mtime for p in members), default=0.0)
    if target.exists() and target.stat().st_mtime >= newest:
        return target
    partial = target.with_name(target.name + ".part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in members:
            archive.write(path, arcname=str(Path(out_dir.name) / path.relative_to(out_dir)))
    partial.replace(target)
    return target
