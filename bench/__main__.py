"""``python -m bench [--quick] [--data PATH]``: every engine benchmark in one go (see bench/run.py)."""
import sys

from bench.run import main

sys.exit(main())
