"""The ``gwinfer`` command line: one module per command group; argparse lives only in this package.

``main`` builds the parser from the groups (:mod:`.main` for catalogues, point models and evaluation,
:mod:`.train` for every training command, :mod:`.posterior`, :mod:`.serving`; :mod:`.triton` is the real-Triton
check ``python -m gwinfer.cli.triton``) and maps a :class:`gwinfer.errors.GwinferError` to one
line on stderr and exit status 2.
"""

from gwinfer.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
