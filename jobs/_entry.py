"""Shared one-liner of the jobs/ scripts: run the CLI with this process's argv and environment."""
from __future__ import annotations

import os
import sys


def submit(prefix: list[str]) -> None:
    from cohort_engine.cli import main
    sys.exit(main([*prefix, *sys.argv[1:]], os.environ))
