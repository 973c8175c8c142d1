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


def defined_flags() -> dict:
    """{command: the flags it takes} (absl's own included), each command imported in a fresh
    interpreter (commands define some flags with the same name)."""
    code = (
        "import importlib\n"
        "from absl import flags\n"
        "importlib.import_module(MODULE)\n"
        "print(' '.join(flags.FLAGS))\n"
    )
    found = {}
    for command, (module, _) in COMMANDS.items():
        out = subprocess.run([sys.executable, "-c", code.replace("MODULE", repr(module))], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        found[command] = set(out.split()) | {"flagfile", "help", "helpshort", "helpfull", "verbosity"}
    return found


def mentioned(text: str) -> set:
    return set(re.findall(r"(?<![\w-])--(?:no)?([a-z][a-z0-9_]+)", text)) - NOT_OURS


def takes(flags: set, name: str) -> bool:
    return name in flags or name.removeprefix("no") in flags


DOCS = ("README.md", "docs/serving.md", "docs/fine_tuning.md", "docs/monitoring.md", "docs/data_service.md",
        "docs/several_machines.md")


def test_every_flag_the_docs_mention_exists_and_each_command_line_takes_its_flags():
    """Every --flag in the docs is some command's; in a `main.py COMMAND ...` line, COMMAND's own."""
    flags = defined_flags()
    every = set().union(*flags.values())
    for doc in DOCS:
        text = read(doc)
        missing = sorted(m for m in mentioned(text) if not takes(every, m))
        assert not missing, f"{doc} mentions flags no command defines: {missing}"
        for command, rest in re.findall(r"main\.py ([a-z_]+)([^`\n]*)", text):
            assert command in COMMANDS, f"{doc}: main.py {command}: no such command"
            wrong = sorted(m for m in mentioned(rest) if not takes(flags[command], m))
            assert not wrong, f"{doc}: `main.py {command}{rest}`: {command} has no flag {wrong}"
