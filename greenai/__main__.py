"""``python -m greenai``."""

from greenai.cli import entry

raise SystemExit(entry())
