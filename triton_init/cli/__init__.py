"""The ``triton-init`` command (also ``python -m triton_init``).

One module per subcommand, listed in ``COMMANDS``: each has ``add_parser(subparsers)``, which registers
its options (validated by argparse: a bad value is one line and exit status 2) and sets ``run``.
``main`` sets the OpenMP wait policy before anything imports torch, then parses and runs; output piped
into a reader that stops early (``| head -1``) ends the command quietly with ``EXIT_PIPE_CLOSED``.
"""

import argparse
import importlib
import sys

from .. import __version__
from . import _common

COMMANDS = ("bench", "init", "verify")  # modules of this package, in the order the help lists them

DESCRIPTION = """\
Fused, shard-invariant parameter initialization (a drop-in for torch.nn.init).
Run 'triton-init COMMAND --help' for a command's options."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (usage is one --help away); subcommands' parsers are this too."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="triton-init", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"triton-init {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    _common.default_openmp_policy()
    try:
        try:
            args = build_parser().parse_args(argv)
            try:
                return args.run(args)
            except _common.UsageError as exc:
                args.parser.error(str(exc))
        finally:
            sys.stdout.flush()  # a reader that went away (| head) shows here, not at the interpreter's exit
    except BrokenPipeError:
        return _common.output_closed()
