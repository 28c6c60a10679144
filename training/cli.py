"""The command line of every entry point: one `key=value` parser, `--help`, and exit codes.

    python -m training.train loss=focal gamma=1      python -m training.train --help
    python -m training.compare losses=ce,focal       python -m training.report parent=<id>

Exit codes (README "Exit codes"):
    0    success (and `--help`)
    1    a failure during the run (one readable line; the traceback with DEBUG=1); the run,
         if one was created, is closed FAILED with the message in its `losslab.error` tag
    2    nothing was started: a bad key or value, bad data or an unusable tracking store
         (unreachable server, unknown run to resume); no run is created
    130  Ctrl-C (SIGINT); 143 SIGTERM: the run is closed KILLED and keeps the checkpoint of
         its last completed epoch, from which `resume=<run_id>` continues

Only the standard library and `training.config` (which needs no Keras) are imported here, so
`--help` answers without TensorFlow's 6 s start-up.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import traceback
import typing
from collections.abc import Callable, Iterable

from training.config import Config, parse_overrides
from training.errors import BAD_INPUT, ConfigError, RunKilled, TrackingError
from training.help import train_help
from training.keyvalue import Key, pairs, parse_keys  # noqa: F401 (the commands' parser)
from training.reachable import check_store, scrub

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_SIGINT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_SIGTERM = 143  # 128 + SIGTERM
HELP_FLAGS = ("--help", "-h", "help")
# After a SIGTERM the run is closed and the process exits in seconds; should it still be alive
# this long after (the exception lost inside a library), it exits anyway, with 143.
HARD_EXIT_S = 30.0
_signalled: list[int] = []  # SIGTERMs received by the current `run_cli`
_deadline: list[threading.Timer] = []
_in_gc: list[bool] = []  # [True] while the garbage collector runs (see `_raise_killed`)
_deferred: list[int] = []  # a SIGTERM that came during a collection or a critical section
_critical: list[int] = []  # one entry per `signals_deferred` block the main thread is in


# --- parsing ---------------------------------------------------------------------------


def resolve_config(argv: list[str]) -> Config:
    """`key=value` arguments → Config. Never evaluates code (see `config._coerce`).

    With `resume=<run_id>` the base is the run's own logged `config.json` and only the keys
    given explicitly change it, so `make train RESUME=id` cannot silently reset the loss or
    dataset to their defaults.
    """
    run_id = dict(pairs(argv)).get("resume")
    if not run_id or run_id.lower() in ("none", "null"):
        return parse_overrides(argv)
    from training.run import tracking  # noqa: PLC0415 (imports mlflow: only when resuming)

    logged = tracking.logged_config(run_id)
    logged["resume"] = None
    return parse_overrides(argv, base=Config.from_dict(logged))


def describe_changes(config: Config) -> str:
    """The config as what differs from the defaults, on one line (the run holds the rest)."""
    default = Config(loss=config.loss, plugins=config.plugins).to_dict()
    changed = {k: v for k, v in config.to_dict().items() if v != default[k] and k != "loss_args"}
    changed.update({f"loss.{k}": v for k, v in config.loss_args.items()})
    shown = " ".join(f"{k}={v}" for k, v in changed.items()) or "(all defaults)"
    return f"{config.loss} on {config.dataset}: {shown}"


# --- running ---------------------------------------------------------------------------


def wants_help(argv: Iterable[str]) -> bool:
    return any(word in HELP_FLAGS for word in argv)


def _run_note(exc: BaseException, resumable: bool) -> str:
    run_id = getattr(exc, "losslab_run_id", None)
    if run_id is None:
        return "no run was open"
    hint = getattr(exc, "losslab_hint", None)
    hint = (f"; {hint}" if hint else f"; continue it with: make train RESUME={run_id}"
            if resumable else "")
    return f"run {run_id} closed as {exc.losslab_run_status}{hint}"


def _gc_phase(phase: str, info) -> None:
    _in_gc[:] = [phase == "start"]
    if phase == "stop" and _deferred:
        # Not raised here (this callback is inside the collection too): SIGALRM in 50 ms
        # runs `_raise_killed` again, in whatever ordinary code the main thread is in then.
        signal.setitimer(signal.ITIMER_REAL, 0.05)


def _raise_killed(signum, frame):
    """SIGTERM → RunKilled in the main thread, wherever it is. An exception raised while C++
    code calls back into Python can be swallowed there, so the trainer checks
    `stop_requested()` again at every batch end, and `HARD_EXIT_S` later the process ends.

    Not inside a garbage collection: there the handler runs in a finaliser or weakref callback
    (SQLAlchemy's, under TensorFlow's `_pywrap_utils.Flatten` when it allocates), which
    swallows the exception ("Exception ignored in") halfway through the library's bookkeeping;
    a worker signalled there was seen alive 60 s later, its exit stuck in a garbage
    collection. The signal is raised again once the collection ends."""
    if signum == signal.SIGALRM:  # the deferred SIGTERM (see `_gc_phase`)
        if not _deferred:
            return
        signum = _deferred.pop()
    if (_in_gc and _in_gc[0]) or _critical:
        _deferred.append(signum)
        return
    if not _signalled:
        timer = threading.Timer(HARD_EXIT_S, _hard_exit, args=(signum,))
        timer.daemon = True
        timer.start()
        _deadline.append(timer)
    _signalled.append(signum)
    raise RunKilled(f"signal {signum}")


@contextlib.contextmanager
def signals_deferred():
    """SIGTERM and Ctrl-C held back until the block ends, then raised there: for a write of
    several steps (an Optuna claim: `ask` makes a trial RUNNING, then it is marked ours) that
    an exception halfway would leave inconsistent. Main thread only; nests."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    _critical.append(1)
    try:
        yield
    finally:
        _critical.pop()
        signal.signal(signal.SIGINT, previous)
    if interrupted and callable(previous):
        previous(signal.SIGINT, None)  # KeyboardInterrupt, as it would have been
    if _deferred and not _critical and not (_in_gc and _in_gc[0]):
        _raise_killed(_deferred.pop(), None)


@contextlib.contextmanager
def signals_default():
    """SIGTERM and Ctrl-C with their default action (the process ends at once) for the block:
    for loading TensorFlow's C++ libraries before anything is written. A Python handler runs
    only between bytecodes, and one dlopen of TensorFlow takes seconds (tens under load), so a
    worker signalled there was seen alive 10 s later; nothing exists yet that a handler would
    need to close. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_requested() -> bool:
    """Whether a SIGTERM arrived during the current command (see `_raise_killed`)."""
    return bool(_signalled)


def _hard_exit(signum: int) -> None:
    print(f"terminated (SIGTERM): still running {HARD_EXIT_S:.0f} s after the signal; exiting "
          "(an open run is closed KILLED by the next command: make runs-clean)",
          file=sys.stderr, flush=True)
    os._exit(128 + signum)


def run_cli(
    fn: Callable[[typing.Any], object],
    argv: list[str],
    resolve: Callable[[list[str]], typing.Any] | None = None,
    *,
    help_text: Callable[[list[str]], str] | None = None,
    show: Callable[[typing.Any], str] | None = None,
) -> int:
    """Parse `argv` (default: into a Config), print one line about it, call `fn`; → exit code.

    `--help` prints `help_text(argv)` and returns 0 before anything is parsed or imported.
    """
    if wants_help(argv):
        print((help_text or train_help)([w for w in argv if w not in HELP_FLAGS]))
        return EXIT_OK
    debug = os.environ.get("DEBUG", "") not in ("", "0")
    previous = signal.signal(signal.SIGTERM, _raise_killed)  # SIGTERM → KILLED, like Ctrl-C
    previous_alarm = signal.signal(signal.SIGALRM, _raise_killed)
    if _gc_phase not in gc.callbacks:
        gc.callbacks.append(_gc_phase)
    try:
        settings = (resolve or resolve_config)(argv)
        if show is not None:
            print(show(settings), flush=True)
        elif isinstance(settings, Config):
            print(describe_changes(settings), flush=True)
        fn(settings)
        return EXIT_OK
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted (SIGINT): {_run_note(exc, True)}", file=sys.stderr)
        return EXIT_SIGINT
    except RunKilled as exc:
        print(f"terminated (SIGTERM): {_run_note(exc, True)}", file=sys.stderr)
        return EXIT_SIGTERM
    except BAD_INPUT as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 (CLI boundary: one line, details with DEBUG=1)
        if stop_requested():  # RunKilled that a library re-raised as another error
            print(f"terminated (SIGTERM): {_run_note(exc, True)}", file=sys.stderr)
            return EXIT_SIGTERM
        if debug:
            traceback.print_exc()
        one_line = scrub(" ".join(str(exc).split()))
        print(
            f"error: {type(exc).__name__}: {one_line} ({_run_note(exc, False)}; "
            "DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        for timer in _deadline:
            timer.cancel()
        _deadline.clear()
        _signalled.clear()
        _deferred.clear()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(_gc_phase)


def exit_process(code: int) -> typing.NoReturn:
    """`sys.exit(code)` for a command's `__main__`; after Ctrl-C / SIGTERM (130 / 143), with
    no interpreter shutdown: the runs are closed by then, and a library that the signal's
    exception interrupted halfway can leave state that hangs the shutdown's collections."""
    if code in (EXIT_SIGINT, EXIT_SIGTERM):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def exit_if_help(help_text: Callable[[list[str]], str], argv: list[str] | None = None) -> None:
    """For `python -m` entry points: answer `--help` and exit 0 before the module imports
    TensorFlow (called above those imports)."""
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        try:
            print(help_text([w for w in argv if w not in HELP_FLAGS]))
        except ConfigError as exc:  # e.g. --help for a loss that does not exist
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        sys.exit(EXIT_OK)


def exit_if_unreachable() -> None:
    """For `python -m` entry points that train: a tracking store (`MLFLOW_TRACKING_URI`) that
    cannot be used (a server that does not answer, a SQLite folder that cannot be written)
    ends the command here, with exit 2 and one line, before TensorFlow's import (~7 s of CPU)
    rather than after it. `train()` checks again for callers in Python."""
    try:
        check_store()
    except TrackingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
