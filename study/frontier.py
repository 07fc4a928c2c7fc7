"""``python -m study.frontier``, the documented command for the Pareto frontier of an experiment; the code is :mod:`study.sweep.report.frontier`."""
import sys

from study.sweep.report.frontier import main

if __name__ == "__main__":
    sys.exit(main())
