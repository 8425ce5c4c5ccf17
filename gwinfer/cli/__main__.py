"""``python -m gwinfer.cli ...`` is the ``gwinfer`` command."""

import sys

from gwinfer.cli.main import main

sys.exit(main())
