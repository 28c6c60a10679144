"""Compare reports rebuilt from the MLflow store alone (`make report`, `training.compare`).

    collect.py  parent and child runs read back from MLflow
    summary.py  mean ± std over seeds, tail recall, paired t-tests against a reference, Holm
    across.py   losses across datasets: mean ranks, Friedman, Wilcoxon + Holm, Nemenyi, CD
    render.py   markdown and CSV (render_across.py: of a compare over several datasets)
    figures.py  curves, per-class recall, reliability, critical-difference diagrams
    build.py    build_report (store → Report) and publish (Report → parent run)

CLI: ``python -m training.report experiment=compare-digits [parent=<run_id>] [reference=ce]``.
"""

from training.study.report.build import Report, build_report, publish
from training.study.report.collect import ReportError, collect, find_parent

__all__ = ["Report", "ReportError", "build_report", "collect", "find_parent", "publish"]
