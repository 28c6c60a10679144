"""`python -m training.tune key=value ...` (what `make tune` runs): an Optuna study over one
loss's search space, every trial a normal run; the tuner itself is `training.study.tune`.

    python -m training.tune loss=focal trials=20 epochs=5
    python -m training.tune loss=focal --help        # every key and every search space
"""

from training.cli import exit_if_help, exit_process
from training.study.tune import tune_help  # the parser side imports no TensorFlow

if __name__ == "__main__":
    exit_if_help(tune_help)  # before anything pulls in TensorFlow (~6 s)

from training.study.tune import (  # noqa: E402 (after the --help exit above)
    StudyResult,
    TuneSettings,
    main,
    parse_settings,
    tune,
)

__all__ = ["StudyResult", "TuneSettings", "main", "parse_settings", "tune"]

if __name__ == "__main__":
    exit_process(main())  # after a signal: no interpreter shutdown (training.cli)
