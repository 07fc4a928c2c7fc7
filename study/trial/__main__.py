"""``python -m study.trial``: run one trial from a YAML file; the code is :mod:`study.trial.run`."""
import sys

from study.trial.run import main

sys.exit(main())
