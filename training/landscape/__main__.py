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

# key -> type; all optional except run.
ARGUMENTS = {"run": str, "points": int, "examples": int, "radius": float, "seed": int}
USAGE = (
    "usage: python -m training.landscape run=<run_id> "
    "[points=21 examples=512 radius=1.0 seed=0]"
)


def parse(argv: list[str]) -> dict:
    """``key=value`` words → typed dict; ValueError naming the bad word and the valid keys."""
    values: dict = {}
    for word in argv:
        key, sep, raw = word.partition("=")
        if not sep or key not in ARGUMENTS:
            raise ValueError(f"unknown argument {word!r}; valid keys: {', '.join(ARGUMENTS)}")
        try:
            values[key] = ARGUMENTS[key](raw)
        except ValueError:
            raise ValueError(f"{key} must be {ARGUMENTS[key].__name__}, got {raw!r}") from None
    if not values.get("run"):
        raise ValueError("run=<run_id> is required")
    return values


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"error: {exc}\n{USAGE}", file=sys.stderr)
        return 2
    import time  # noqa: PLC0415

    import mlflow  # noqa: PLC0415

    from training.landscape.from_run import landscape_of_run  # noqa: PLC0415
    from training.tracking import tracking_uri  # noqa: PLC0415

    mlflow.set_tracking_uri(tracking_uri())
    started = time.perf_counter()
    run_id = args.pop("run")
    try:
        landscape = landscape_of_run(run_id, **args)
    except Exception as exc:  # noqa: BLE001 (CLI boundary: one readable line)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"landscape of run {run_id}: centre loss {landscape.center_loss:.4f}, sharpness "
          f"{landscape.sharpness:+.4f} at r={landscape.sharpness_radius:g}, "
          f"grid {len(landscape.coords)}x{len(landscape.coords)} "
          f"({time.perf_counter() - started:.1f} s); logged under landscape/ in the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
