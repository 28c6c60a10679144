"""`python -m training.report [experiment=...] [parent=...]`: see `training.study.report`."""

import sys

from training.study.report.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
