import sys

from study.sweep.cli import main

sys.exit(main())
