"""CLI: rebuild a compare's report and figures from the MLflow store, log them to its parent.

    python -m training.report experiment=compare-digits [parent=<run_id>]
    make report EXPERIMENT=compare-digits [PARENT=<run_id>]

Without ``parent`` the latest compare parent run of ``experiment`` is used; with neither,
the latest compare parent run in the store. The store is
``MLFLOW_TRACKING_URI`` or the project's ``mlflow.db``. Exit codes: 0 done, 2 bad arguments
or no such compare (the message lists what exists), 1 any other failure.
"""

from __future__ import annotations

import sys

ARGUMENTS = ("experiment", "parent")
USAGE = "usage: python -m training.report [experiment=<name>] [parent=<run_id>]"


def parse(argv: list[str]) -> dict[str, str]:
    """``key=value`` words → dict; ValueError naming the bad word and the valid keys."""
    values = {}
    for word in argv:
        key, sep, raw = word.partition("=")
        if not sep or key not in ARGUMENTS:
            raise ValueError(f"unknown argument {word!r}; valid keys: {', '.join(ARGUMENTS)}")
        values[key] = raw.strip()
    return values


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"error: {exc}\n{USAGE}", file=sys.stderr)
        return 2
    import mlflow  # noqa: PLC0415 (heavy: after the arguments are checked)

    from training.report import ReportError, build_report, find_parent, publish  # noqa: PLC0415
    from training.tracking import TrackingError, check_reachable, tracking_uri  # noqa: PLC0415

    try:
        uri = tracking_uri()
        check_reachable(uri)
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(uri)
        parent = find_parent(client, args.get("experiment"), args.get("parent"))
        report = build_report(client, parent)
        publish(client, report)
    except (ReportError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 (CLI boundary: one readable line)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report.markdown)
    print(f"logged report.md, report.csv and {len(report.figures)} figures to parent run "
          f"{parent} ({uri})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
