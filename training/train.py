"""`python -m training.train key=value ...` (what `make train` runs) and `train(config)`.

    python -m training.train loss=focal gamma=1 epochs=10
    python -m training.train loss=focal --help       # every key, and focal's arguments

The trainer itself is `training.run.trainer.train`, re-exported here.
"""

import sys

from training.cli import exit_if_help, exit_if_unreachable, run_cli
from training.help import train_help

if __name__ == "__main__":
    exit_if_help(train_help)  # before the trainer's import below pulls in TensorFlow (~6 s)
    exit_if_unreachable()  # a dead tracking server: exit 2 in a second, not after the import

from training.run.trainer import train  # noqa: E402 (after the --help exit above)


def main(argv: list[str] | None = None) -> int:
    return run_cli(train, sys.argv[1:] if argv is None else argv, help_text=train_help)


__all__ = ["main", "train"]

if __name__ == "__main__":
    sys.exit(main())
