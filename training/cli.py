"""Command-line wrapper shared by the entry points: parse key=value, run, map errors to exits.

Exit codes (README "Exit codes"):
    0    success
    1    a failure during the run (one readable line; the traceback with DEBUG=1); the run,
         if one was created, is closed FAILED with the message in its `losslab.error` tag
    2    nothing was started: a bad config value, bad data or an unusable tracking store
         (unreachable server, unknown run to resume); no run is created
    130  Ctrl-C (SIGINT); 143 SIGTERM: the run is closed KILLED and keeps the checkpoint of
         its last completed epoch, from which `resume=<run_id>` continues
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable

from training.config import Config, ConfigError, parse_overrides

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SIGINT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_SIGTERM = 143  # 128 + SIGTERM


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    from training.data import DataError  # noqa: PLC0415
    from training.tracking import TrackingError  # noqa: PLC0415

    return (ConfigError, DataError, TrackingError)


def _raise_killed(signum, frame):
    from training.tracking import RunKilled  # noqa: PLC0415

    raise RunKilled(f"signal {signum}")


def resolve_config(argv: list[str]) -> Config:
    """`key=value` arguments → Config. Never evaluates code (see `config._coerce`).

    With `resume=<run_id>` the base is the run's own logged `config.json` and only the keys
    given explicitly change it, so `make train RESUME=id` cannot silently reset the loss or
    dataset to their defaults.
    """
    run_id = _explicit_resume(argv)
    if run_id is None:
        return parse_overrides(argv)
    from training import tracking  # noqa: PLC0415 (imports mlflow: only when resuming)

    logged = tracking.logged_config(run_id)
    logged["resume"] = None
    return parse_overrides(argv, base=Config.from_dict(logged))


def _explicit_resume(argv: list[str]) -> str | None:
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.strip().replace("-", "_") == "resume" and value.strip().lower() not in (
            "",
            "none",
            "null",
        ):
            return value.strip()
    return None


def _run_note(exc: BaseException, resumable: bool) -> str:
    run_id = getattr(exc, "losslab_run_id", None)
    if run_id is None:
        return "no run was open"
    hint = f"; continue it with: make train RESUME={run_id}" if resumable else ""
    return f"run {run_id} closed as {exc.losslab_run_status}{hint}"


def run_cli(fn: Callable[[Config], object], argv: list[str], resolve=None) -> int:
    """Parse `argv` into a Config, print it, call `fn(config)`; return the exit code."""
    from training.tracking import RunKilled  # noqa: PLC0415

    debug = os.environ.get("DEBUG", "") not in ("", "0")
    previous = signal.signal(signal.SIGTERM, _raise_killed)  # SIGTERM → KILLED, like Ctrl-C
    try:
        config = (resolve or resolve_config)(argv)
        print("config:\n  " + "\n  ".join(f"{k} = {v!r}" for k, v in config.to_dict().items()))
        fn(config)
        return 0
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted (SIGINT): {_run_note(exc, True)}", file=sys.stderr)
        return EXIT_SIGINT
    except RunKilled as exc:
        print(f"terminated (SIGTERM): {_run_note(exc, True)}", file=sys.stderr)
        return EXIT_SIGTERM
    except _bad_input_errors() as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 (CLI boundary: one line, details with DEBUG=1)
        if debug:
            traceback.print_exc()
        one_line = " ".join(str(exc).split())
        print(
            f"error: {type(exc).__name__}: {one_line} ({_run_note(exc, False)}; "
            "DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
