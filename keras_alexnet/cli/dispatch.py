"""Runs `python main.py COMMAND [flags]`: picks the command, parses its flags, reports errors in one line."""

import contextlib
import importlib
import os
import sys

from absl import app
from absl import flags

from keras_alexnet.cli import flaghelp
from keras_alexnet.cli.commands import COMMANDS
from keras_alexnet.errors import UserError

PROG = "main.py"
FLAGS = flags.FLAGS
SHORT_HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort")
HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")


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
        f"`python {PROG} COMMAND --help` lists a command's flags by task, with their defaults and, where a",
        "paper defines the setting, its section. `--flagfile=FILE` reads flags from a file.",
    ]
    return "\n".join(lines)


def _asks_for_help(command_argv) -> bool:
    return any(arg.split("=")[0] in HELP_FLAGS for arg in command_argv[1:])


def _fail(command: str, message: str, exit_code: int) -> None:
    prefix = f"{PROG} {command}" if command else PROG
    print(f"{prefix}: error: {message}", file=sys.stderr)
    sys.exit(exit_code)


@contextlib.contextmanager
def _stderr_silenced():
    """Points file descriptor 2 at /dev/null for the duration (C++ logging writes there directly)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly(announce=None) -> None:
    """Imports TensorFlow with its start-up noise (CUDA probing, oneDNN notices) kept out of the terminal.

    TensorFlow's C++ logging ignores `TF_CPP_MIN_LOG_LEVEL` once absl's Python logging is loaded (as
    it is in an absl application), so the import runs with stderr silenced; `TF_CPP_MIN_LOG_LEVEL`
    still quiets what it logs later. `--verbosity=1` or more shows everything. With `announce` (the
    command's `starting()` line), the line is printed first and the import shown as a phase (it takes
    seconds).
    """
    if announce is not None:
        from keras_alexnet.progress import phase

        print(announce, flush=True)
        loading = phase("Loading TensorFlow")
    else:
        loading = contextlib.nullcontext()
    with loading:
        if FLAGS["verbosity"].value >= 1:
            import tensorflow  # noqa: F401
            return
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        with _stderr_silenced():
            import tensorflow  # noqa: F401  (the import itself is the point)


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
        if any(arg in SHORT_HELP_FLAGS for arg in command_argv[1:]):
            print(flaghelp.command_help(module))
            sys.exit(0)
        try:
            remaining = FLAGS(command_argv)
        except flags.Error as error:
            _fail(command, str(error).splitlines()[0], 2)
        except SystemExit as done:  # absl's --help/--helpfull print, then exit with status 1
            sys.exit(0 if done.code == 1 and _asks_for_help(command_argv) else done.code)
        if len(remaining) > 1 and not getattr(module, "TAKES_ARGUMENTS", False):
            _fail(command, f"unexpected argument '{remaining[1]}' (flags are written --name=value)", 2)
        try:
            if hasattr(module, "validate"):
                module.validate(*([remaining[1:]] if getattr(module, "TAKES_ARGUMENTS", False) else []))
        except UserError as error:
            _fail(command, str(error), error.exit_code)
        return remaining

    def run(remaining):
        from absl import logging

        if not FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)  # no INFO lines from TensorFlow's Python code
        try:
            import_tensorflow_quietly(module.starting() if hasattr(module, "starting") else None)
            module.run(remaining[1:])
        except UserError as error:
            _fail(command, str(error), error.exit_code)
        except KeyboardInterrupt:
            _fail(command, "interrupted", 130)

    # absl's --help prints the main module's docstring first: show the command's own.
    sys.modules["__main__"].__doc__ = module.__doc__ or f"python {PROG} {command}"
    try:
        app.run(run, argv=[f"{PROG} {command}"] + argv[2:], flags_parser=parse_flags)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
