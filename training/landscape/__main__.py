"""CLI: the loss landscape of a finished run, logged into that run.

    python -m training.landscape run=<run_id> [points=21 examples=512 radius=1.0 seed=0]
    make landscape RUN=<run_id> ARGS="points=11"

Omitted ``points``/``examples``/``radius`` take the run's own config values (``landscape_*``);
``seed`` (directions and data subset) defaults to 0, as in training, so landscapes of runs
compared together share their directions. The tracking store is ``MLFLOW_TRACKING_URI`` or
the project's ``mlflow.db``. Exit codes: 0 done, 2 bad arguments, 1 any other failure.
"""

from __future__ import annotations

import sys
import time

from training.cli import EXIT_BAD_INPUT, wants_help
from training.errors import ConfigError, TrackingError
from training.help import keys_help
from training.keyvalue import Key, parse_keys

# None = the run's own landscape_* config value.
KEYS = (
    Key("run", str, "", "the run id", required=True),
    Key("points", int, None, "grid points per axis (default: the run's landscape_points)"),
    Key("examples", int, None, "training subset size (default: the run's landscape_examples)"),
    Key("radius", float, None, "grid half-width (default: the run's landscape_radius)"),
    Key("seed", int, None, "seed of the directions and the data subset (default 0)"),
)
USAGE = (
    "usage: python -m training.landscape run=<run_id> "
    "[points=21 examples=512 radius=1.0 seed=0]"
)


def parse(argv: list[str]) -> dict:
    """``key=value`` words → typed dict (unset optional keys dropped); ConfigError."""
    values = parse_keys(argv, KEYS)
    return {k: v for k, v in values.items() if v is not None}


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
    from training.landscape.from_run import landscape_of_run  # noqa: PLC0415
    from training.store import open_store, scrub  # noqa: PLC0415 (MLflow)

    try:
        open_store()
    except TrackingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    run_id = args.pop("run")
    try:
        landscape = landscape_of_run(run_id, **args)
    except Exception as exc:  # noqa: BLE001 (CLI boundary: one readable line)
        print(f"error: {type(exc).__name__}: {scrub(str(exc))}", file=sys.stderr)
        return 1
    print(f"landscape of run {run_id}: centre loss {landscape.center_loss:.4f}, sharpness "
          f"{landscape.sharpness:+.4f} at r={landscape.sharpness_radius:g}, "
          f"grid {len(landscape.coords)}x{len(landscape.coords)} "
          f"({time.perf_counter() - started:.1f} s); logged under landscape/ in the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
