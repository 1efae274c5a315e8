"""The ``triton-init`` command (also ``python -m triton_init``).

One module per subcommand, listed in ``COMMANDS`` with its one-line summary: each has
``add_arguments(parser)``, which registers its options (validated by argparse: a bad value is one line and
exit status 2) and sets ``run``. ``main`` sets the OpenMP wait policy before anything imports torch, then
imports only the module of the subcommand named (none for ``--help`` and ``--version``, which therefore
never load torch), parses and runs; output piped into a reader that stops early (``| head -1``) ends the
command quietly with ``EXIT_PIPE_CLOSED``.
"""

import argparse
import importlib
import sys

from .._version import __version__
from . import _common

# modules of this package -> their summaries, in the order the help lists them
COMMANDS = {
    "bench": "time triton_init against torch.nn.init here, and check the kernels",
    "init": "materialize and initialize a built-in model (or one rank's shard)",
    "verify": "check a checkpoint's tensors against the init manifest, element by element",
}

DESCRIPTION = """\
Fused, shard-invariant parameter initialization (a drop-in for torch.nn.init).
Run 'triton-init COMMAND --help' for a command's options."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (usage is one --help away); subcommands' parsers are this too."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(commands=COMMANDS) -> argparse.ArgumentParser:
    """The parser, with the options of the subcommands in ``commands`` (their modules imported); the others
    are listed by name and summary only."""
    parser = _Parser(prog="triton-init", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"triton-init {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        command = subparsers.add_parser(name, help=summary, formatter_class=argparse.RawDescriptionHelpFormatter)
        if name in commands:
            importlib.import_module(f".{name}", __name__).add_arguments(command)
    return parser


def _named_command(argv) -> tuple:
    """The subcommand ``argv`` names, as argparse will find it: the first argument that is not an option (the
    top level's options take no value); () if none does."""
    words = [arg for arg in (sys.argv[1:] if argv is None else argv) if not arg.startswith("-")]
    return tuple(words[:1])


def main(argv=None) -> int:
    _common.default_openmp_policy()
    try:
        try:
            args = build_parser(_named_command(argv)).parse_args(argv)
            try:
                return args.run(args)
            except _common.UsageError as exc:
                args.parser.error(str(exc))
        finally:
            sys.stdout.flush()  # a reader that went away (| head) shows here, not at the interpreter's exit
    except BrokenPipeError:
        return _common.output_closed()
