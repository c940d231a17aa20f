"""Analysis over the results Parquet: tables, plots, reports. Imports no training code."""

from analysis.load import read_table, status_counts
from analysis.tables import best_per_cell

__all__ = ["best_per_cell", "read_table", "status_counts"]
