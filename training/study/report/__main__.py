"""CLI: rebuild a compare's report and figures from the MLflow store, log them to its parent.

    python -m training.report experiment=compare-digits [parent=<run_id>] [reference=focal]
    make report EXPERIMENT=compare-digits [PARENT=<run_id>]

Without ``parent`` the latest compare parent run of ``experiment`` is used; with neither,
the latest compare parent run in the store. ``reference`` names the loss the others are
compared with (comma-separated, at most one per task; default: the compare's own
``reference`` if it logged one, else each task's first listed loss). The store is
``MLFLOW_TRACKING_URI`` or the project's ``mlflow.db``. Exit codes: 0 done, 2 bad arguments
or no such compare (the message lists what exists), 1 any other failure.
"""

from __future__ import annotations

import sys

from training.cli import EXIT_BAD_INPUT, wants_help
from training.errors import ConfigError, TrackingError
from training.help import keys_help
from training.keyvalue import Key, parse_keys

KEYS = (
    Key("experiment", str, "", "experiment of the compare (default: the latest anywhere)"),
    Key("parent", str, "", "run id of the compare parent (default: the latest)"),
    Key("reference", str, "", "loss(es) compared with, one per task (default: first listed)"),
)
USAGE = ("usage: python -m training.report [experiment=<name>] [parent=<run_id>] "
         "[reference=<loss>[,<loss>]]")


def parse(argv: list[str]) -> dict[str, str]:
    """``key=value`` words → dict (empty values dropped); ConfigError on a bad word."""
    return {k: v for k, v in parse_keys(argv, KEYS).items() if v}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        print(keys_help(USAGE, KEYS))
        return 0
    try:
        args = parse(argv)
    except ConfigError as exc:
        print(f"error: {exc}\n{USAGE}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # MLflow is imported here, after the arguments are checked (heavy).
    from training.store import open_store, redact, scrub, tracking_uri  # noqa: PLC0415
    from training.study.report import ReportError, build_report, find_parent, publish  # noqa: PLC0415

    try:
        uri = tracking_uri()
        client = open_store(uri)
        parent = find_parent(client, args.get("experiment"), args.get("parent"))
        report = build_report(client, parent, args.get("reference"))
        publish(client, report)
    except (ReportError, TrackingError) as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 (CLI boundary: one readable line)
        print(f"error: {type(exc).__name__}: {scrub(str(exc))}", file=sys.stderr)
        return 1
    print(report.markdown)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    per = "per loss and dataset" if len(report.by_dataset) > 1 else "per loss"
    print(f"logged report.md, report.csv, {len(report.figures)} figures and the description to "
          f"parent run {parent}, and one summary run {per} under it ({redact(uri)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
