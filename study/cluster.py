"""``python -m study.cluster``, the documented command for offline checks of the cluster and tracking-server YAML; the code is :mod:`study.ops.cluster`."""
import sys

from study.ops.cluster import main

if __name__ == "__main__":
    sys.exit(main())
