"""Runs `python main.py COMMAND [flags]`: picks the command, parses its flags, reports errors in one line."""

import importlib
import os
import sys

from absl import app
from absl import flags

from keras_alexnet.cli.commands import COMMANDS
from keras_alexnet.errors import FlagError, UserError

PROG = "main.py"
FLAGS = flags.FLAGS


def _usage() -> str:
    width = max(len(name) for name in COMMANDS) if COMMANDS else 0
    lines = [
        f"usage: python {PROG} COMMAND [--flag=value ...]",
        "",
        "keras-alexnet: AlexNet (NIPS 2012) and VGG (2014) in TensorFlow/Keras.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += [
        "",
        f"`python {PROG} COMMAND --helpfull` lists a command's flags with their defaults and the paper",
        "section each comes from. `--flagfile=FILE` reads flags from a file.",
    ]
    return "\n".join(lines)


def _fail(command: str, message: str, exit_code: int) -> None:
    prefix = f"{PROG} {command}" if command else PROG
    print(f"{prefix}: error: {message}", file=sys.stderr)
    sys.exit(exit_code)


def quiet_tensorflow() -> None:
    """Keeps TensorFlow's start-up noise (CUDA probing, oneDNN notices) out of the terminal.

    Called after flag parsing and before TensorFlow is imported; `--verbosity=1` or more shows it.
    """
    if FLAGS["verbosity"].value >= 1:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1"))
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


def main(argv=None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help", "--helpshort", "--helpfull"):
        print(_usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        _fail("", f"unknown command '{command}' (choose from: {', '.join(COMMANDS)})", 2)
    module = importlib.import_module(COMMANDS[command][0])

    def parse_flags(command_argv):
        try:
            remaining = FLAGS(command_argv)
        except flags.Error as error:
            _fail(command, str(error).splitlines()[0], 2)
        if len(remaining) > 1 and not getattr(module, "TAKES_ARGUMENTS", False):
            _fail(command, f"unexpected argument '{remaining[1]}' (flags are written --name=value)", 2)
        quiet_tensorflow()
        try:
            if hasattr(module, "validate"):
                module.validate()
        except UserError as error:
            _fail(command, str(error), error.exit_code)
        return remaining

    def run(remaining):
        try:
            module.run(remaining[1:])
        except UserError as error:
            _fail(command, str(error), error.exit_code)
        except KeyboardInterrupt:
            _fail(command, "interrupted", 130)

    app.run(run, argv=[f"{PROG} {command}"] + argv[2:], flags_parser=parse_flags)
