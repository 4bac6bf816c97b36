"""``python -m greenai``."""

from greenai.cli import main

raise SystemExit(main())
