"""``python -m gwinfer.train``: the documented torchrun entry point, kept as an alias of :mod:`gwinfer.cli.train`."""

import sys

from gwinfer.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
