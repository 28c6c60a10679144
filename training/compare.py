"""`python -m training.compare key=value ...` (what `make compare` runs); the compare itself
is `training.study.compare`, re-exported here."""

from training.cli import exit_process
from training.study.compare import (  # the parser side imports no TensorFlow
    CompareIncomplete,
    CompareSettings,
    child_configs,
    compare,
    main,
    parse_settings,
)

__all__ = ["CompareIncomplete", "CompareSettings", "child_configs", "compare", "main",
           "parse_settings"]

if __name__ == "__main__":
    exit_process(main())  # after a signal: no interpreter shutdown (training.cli)
