"""The ``spinout`` command: one entry point, subcommands loaded only when used.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``main(args) -> int``;
importing only the chosen one keeps ``spinout solve`` free of torch and ``spinout train`` free of
FastAPI.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

#: name -> (module, one-line help); the extra each needs is in EXTRA_FOR.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "anneal": ("service.anneal_command", "solve a QUBO file in-process with the embedded engine"),
    "serve": ("service.serve_command", "run the DA-compatible solver service"),
    "worker": ("service.worker_command", "run a solver worker for the Redis scale-out"),
    "solve": ("client.solve_command", "send a QUBO file to a solver service and print the result"),
    "train": ("trainer.train_command", "train an MLP with Ising-Dropout or another dropout variant"),
    "reproduce": ("trainer.reproduce_command", "reproduce the Ising-Dropout paper's tables"),
    "study": ("trainer.study_command", "run the Ising-Dropout study (annealer vs cheap solvers) and report"),
}

#: The install extra a command's module needs (``pip install spinout`` is the client alone).
EXTRA_FOR = {"anneal": "service", "serve": "service", "worker": "service", "train": "train",
             "reproduce": "train", "study": "train"}


@contextlib.contextmanager
def _extra_installed(name: str) -> Iterator[None]:
    """Turn a missing dependency of the command into a message naming the extra to install."""
    try:
        yield
    except ModuleNotFoundError as exc:
        extra = EXTRA_FOR.get(name)
        if extra is None or exc.name is None or exc.name.split(".")[0] in ("service", "client",
                                                                              "trainer"):
            raise
        raise SystemExit(f"spinout {name} needs {exc.name}, which is not installed: "
                         f"pip install 'spinout[{extra}]'") from None


def _command_module(name: str) -> ModuleType:
    with _extra_installed(name):
        return importlib.import_module(SUBCOMMANDS[name][0])


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spinout", description="SpinOut: QUBO/Ising annealing "
                                     "service, client and Ising-Dropout trainer.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            _command_module(name).configure(child)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = _command_module(args.command)
    with _extra_installed(args.command):
        return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
