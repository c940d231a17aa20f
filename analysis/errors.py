"""The error a report raises for a sweep it cannot report on; str(error) is one line. Here, not in report.py, so
that the CLI can catch it without importing pandas."""


class ReportError(ValueError):
    pass
