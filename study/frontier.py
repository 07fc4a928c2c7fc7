"""``python -m study.frontier``, the documented command for the Pareto frontier of an experiment; the code is :mod:`study.sweep.report.command`."""
import sys

from study.sweep.report.command import main

if __name__ == "__main__":
    sys.exit(main())
