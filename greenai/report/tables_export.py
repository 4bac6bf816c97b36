"""Export a run's tables — summary, devices, phases, steps, timeline, phase spans — as files."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from greenai.errors import ConfigError
from greenai.safe_output import csv_safe

if TYPE_CHECKING:
    import pandas as pd

    from greenai.measurement import Measurement

TABLE_FORMATS = ("csv", "json", "parquet")


def run_tables(
    m: Measurement,
    timeline: pd.DataFrame | None = None,
    phase_spans: pd.DataFrame | None = None,
    requests: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table of a run, by name; the timeline, spans and request rows only when given.

    Request rows (a serving job's, ``RunStore.requests``) only when there are some.
    """
    tables = {kind: m.to_frame(kind) for kind in ("summary", "devices", "phases", "steps")}
    if timeline is not None:
        tables["timeline"] = timeline
    if phase_spans is not None:
        tables["phase_spans"] = phase_spans
    if requests is not None and len(requests):
        tables["requests"] = requests
    return tables


def export_tables(
    m: Measurement,
    directory: str | Path,
    fmt: str = "csv",
    *,
    timeline: pd.DataFrame | None = None,
    phase_spans: pd.DataFrame | None = None,
    requests: pd.DataFrame | None = None,
) -> list[Path]:
    """Write each table of :func:`run_tables` to ``directory/<table>.<fmt>``; return the paths.

    ``json`` writes records (one object per row); ``parquet`` needs ``pyarrow``
    (``pip install 'greenai[parquet]'``). The directory is created if missing.

    Raises:
        ConfigError: ``fmt`` is not one of :data:`TABLE_FORMATS`, or parquet without pyarrow.
    """
    if fmt not in TABLE_FORMATS:
        raise ConfigError(f"table format must be one of {', '.join(TABLE_FORMATS)}; got {fmt!r}")
    if fmt == "parquet" and find_spec("pyarrow") is None:
        raise ConfigError(
            "parquet export needs pyarrow: pip install 'greenai[parquet]' (or use csv or json)"
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in run_tables(m, timeline, phase_spans, requests).items():
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            csv_safe(frame).to_csv(path, index=False)
        elif fmt == "json":
            frame.to_json(path, orient="records", indent=2)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths
