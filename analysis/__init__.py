"""Analysis over the results Parquet: tables, plots, reports. Imports no training code.

The package itself imports nothing heavy, so that the CLI can catch `ReportError` (analysis/errors.py) without
pandas; `read_table`, `status_counts` and `best_per_cell` are imported on first use (PEP 562).
"""

from typing import Any

from analysis.errors import ReportError

__all__ = ["ReportError", "best_per_cell", "read_table", "status_counts"]

_LAZY = {"read_table": "analysis.load", "status_counts": "analysis.load", "best_per_cell": "analysis.tables"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
