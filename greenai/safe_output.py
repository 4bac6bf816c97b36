"""What the command line writes: safe on a terminal, safe in a spreadsheet, checked first.

- :func:`terminal_text` drops control characters, so a run named with escape sequences
  cannot move the cursor, retitle the window or hide text when it is listed.
- :func:`csv_safe` neutralises cells a spreadsheet would run as a formula (OWASP's "CSV
  injection": text starting ``=``, ``+``, ``-``, ``@``, tab or carriage return).
- :func:`check_output` refuses an output path that cannot be written (a folder, a missing
  folder, no permission) before any long work; :func:`write_output` turns a failed write
  (a full disk) into a :class:`~greenai.errors.ConfigError`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenai.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DISPLAY_NAME_MAX",
    "check_output",
    "csv_safe",
    "cut",
    "display_measurement",
    "terminal_text",
    "write_output",
]

DISPLAY_NAME_MAX = 120
"""Names longer than this are cut (ending ``…``) in text, Markdown and HTML reports; JSON
and CSV keep them whole."""

DISPLAY_TEXT_MAX = 2000
"""Any other text (a note, a source) is cut at this length in a displayed report."""

# C0 controls but tab and newline, DEL, and the C1 controls (U+0080..U+009F): ESC and CSI
# among them, so no escape sequence survives.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def terminal_text(text: str) -> str:
    """``text`` without control characters (tab and newline are kept)."""
    return _CONTROL.sub("", text)


def display_measurement(m: Any) -> Any:
    """``m`` as reports show it: no control characters, names cut to :data:`DISPLAY_NAME_MAX`.

    The one sanitiser for what a person reads (text, Markdown, HTML, model cards, compare):
    a run named with escape sequences cannot drive the terminal, and a 100,000-character
    name does not make a report take a minute.
    """
    from greenai.measurement import Measurement

    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, str):
            limit = DISPLAY_NAME_MAX if key in ("name", "phase", "device") else DISPLAY_TEXT_MAX
            return cut(terminal_text(value), limit)
        if isinstance(value, dict):
            return {k: clean(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v, key) for v in value]
        return value

    return Measurement.from_dict(clean(m.to_dict()))


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in ``…`` when it was longer."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would take for a formula, prefixed with ``'``; else as is."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells are :func:`csv_cell`-safe (numbers untouched)."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    out: pd.DataFrame = frame.copy()
    for column in out.columns:
        if is_object_dtype(out[column]) or is_string_dtype(out[column]):
            out[column] = out[column].map(csv_cell)
    out.columns = [csv_cell(str(c)) for c in out.columns]
    return out


def check_output(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path, once it is known that a file can be written there.

    Raises:
        ConfigError: ``path`` is a folder, its folder does not exist, or the file or its
            folder is not writable.
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise ConfigError(f"{what} {out} is a folder; give a file name in it")
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError(f"{what} {out}: the folder {folder} does not exist; create it first")
    if out.exists() and not os.access(out, os.W_OK):
        raise ConfigError(f"{what} {out} is not writable")
    if not out.exists() and not os.access(folder, os.W_OK):
        raise ConfigError(f"{what} {out}: the folder {folder} is not writable")
    return out


def write_output(path: str | os.PathLike[str], text: str, what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` after :func:`check_output`.

    Raises:
        ConfigError: The path cannot be written, or the write failed (a full disk).
    """
    out = check_output(path, what)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {out}: {exc.strerror or exc}") from exc
    return out
