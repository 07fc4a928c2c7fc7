"""``python -m study.servers``, the documented command for the local PostgreSQL and MLflow servers and their auth config; the code is :mod:`study.ops.servers`."""
import sys

from study.ops.servers import main

if __name__ == "__main__":
    sys.exit(main())
