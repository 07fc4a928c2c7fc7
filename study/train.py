"""``python -m study.train``, the documented command for training priors alone; the code is :mod:`study.trial.train`."""
import sys

from study.trial.train import main

if __name__ == "__main__":
    sys.exit(main())
