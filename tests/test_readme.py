"""The README stays true: its quick-start test command is CI's, its commands and flags exist."""

import os
import re
import subprocess
import sys

from keras_alexnet.cli.commands import COMMANDS

# Options of other programs the docs show: setup.sh --test, docker run --rm/--mount/--gpus, tensorboard.
NOT_OURS = {"test", "rm", "mount", "gpus", "logdir", "host", "port", "dir", "all"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def quick_start_commands():
    section = read("README.md").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("main.py train")
    assert commands[1] in read(".ci/run").splitlines()


def test_readme_command_table_matches_the_cli():
    table = re.findall(r"^\| `(\w+)` \|", read("README.md"), flags=re.M)
    assert table == list(COMMANDS)


def defined_flags():
    code = (
        "import importlib, sys\n"
        "from absl import flags\n"
        "from keras_alexnet.cli.commands import COMMANDS\n"
        "for module, _ in COMMANDS.values(): importlib.import_module(module)\n"
        "print(' '.join(flags.FLAGS))\n"
    )
    # Commands define some flags with the same name, so each is imported in a fresh interpreter.
    names = {"flagfile", "help", "helpshort", "helpfull", "verbosity"}  # absl's own
    for module, _ in COMMANDS.values():
        one = code.replace("for module, _ in COMMANDS.values(): ", f"module = {module!r}; ")
        out = subprocess.run([sys.executable, "-c", one], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        names.update(out.split())
    return names


def test_every_flag_the_docs_mention_exists():
    names = defined_flags()
    for doc in ("README.md", "docs/serving.md"):
        mentioned = set(re.findall(r"(?<![\w-])--(?:no)?([a-z][a-z0-9_]+)", read(doc)))
        mentioned -= NOT_OURS
        missing = sorted(m for m in mentioned if m not in names and m.removeprefix("no") not in names)
        assert not missing, f"{doc} mentions flags no command defines: {missing}"
