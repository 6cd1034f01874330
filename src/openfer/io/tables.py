"""Writers for analysis records: JSON, CSV and Parquet, each written atomically (temp file + rename)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError


def _atomic_path(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def _commit(tmp: str, path: Path) -> None:
    os.replace(tmp, path)


def write_json(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    fd, tmp = _atomic_path(path)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=1, allow_nan=False, default=_json_default)
            fh.write("\n")
        _commit(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def columns_of(records: Sequence[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


def write_csv(records: Sequence[dict[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """One row per record; nested values (landmark lists) are JSON-encoded."""
    path = Path(path)
    cols = list(columns) if columns else columns_of(records)
    fd, tmp = _atomic_path(path)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in records:
                w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
        _commit(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def records_to_dataframe(records: Sequence[dict[str, Any]], classes: Sequence[str] = ()) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise InputError("pandas is needed for DataFrames: pip install 'openfer[tables]'") from None
    if records:
        return pd.DataFrame.from_records(list(records))
    base = ["source", "frame", "time", "face", "x1", "y1", "x2", "y2", "score", "landmark_score",
            "yaw", "pitch", "roll", "label", "label_score", *classes]
    return pd.DataFrame(columns=base)


def write_parquet(records: Sequence[dict[str, Any]], path: str | Path, classes: Sequence[str] = ()) -> Path:
    path = Path(path)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise InputError("pyarrow is needed for Parquet output: pip install 'openfer[tables]'") from None
    df = records_to_dataframe(records, classes)
    fd, tmp = _atomic_path(path)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        _commit(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
