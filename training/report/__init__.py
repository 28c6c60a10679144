"""`python -m training.report` (what `make report` runs); the report code is
`training.study.report`, re-exported here."""

from training.study.report import (
    Report,
    ReportError,
    build_report,
    collect,
    find_parent,
    publish,
)

__all__ = ["Report", "ReportError", "build_report", "collect", "find_parent", "publish"]
