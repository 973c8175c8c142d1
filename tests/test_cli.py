"""The command-line contract of `main.py`: help, unknown commands, bad flags."""

import os
import subprocess
import sys

import pytest

from keras_alexnet.cli import flaghelp
from keras_alexnet.cli.commands import COMMANDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(*args, unset=()):
    env = {key: value for key, value in os.environ.items() if key not in unset}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env=env,
    )


def test_help_lists_every_command():
    result = run_main("--help")
    assert result.returncode == 0, result.stderr
    for name, (_, summary) in COMMANDS.items():
        assert f"  {name}" in result.stdout and summary in result.stdout


def test_no_command_prints_usage_and_exits_2():
    result = run_main()
    assert result.returncode == 2
    assert "usage: python main.py COMMAND" in result.stdout


def test_unknown_command_is_one_line_exit_2():
    result = run_main("trian")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"main.py: error: unknown command 'trian' (choose from: {', '.join(COMMANDS)})")
    assert result.stdout == ""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unknown_flag_is_one_line_exit_2(command):
    result = run_main(command, "--no_such_flag=1")
    assert result.returncode == 2
    assert result.stderr.strip() == f"main.py {command}: error: Unknown command line flag 'no_such_flag'"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_helpfull_shows_flags_with_defaults(command):
    result = run_main(command, "--helpfull")
    assert result.returncode == 0, result.stderr
    assert "(default:" in result.stdout
    assert "--flagfile" in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_module_does_not_import_tensorflow(command):
    """Flags are parsed and refused before TensorFlow's slow, noisy import starts."""
    module = COMMANDS[command][0]
    code = f"import sys, {module}; sys.exit('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"{module} imports tensorflow at import time {result.stderr}"


def test_train_help_cites_paper_sections():
    if "train" not in COMMANDS:
        pytest.fail("the train command is missing")
    result = run_main("train", "--helpfull")
    assert result.returncode == 0
    assert "[AlexNet §5]" in result.stdout
    assert "--batch_size" in result.stdout and "--momentum" in result.stdout
    assert "(default: '0.9')" in result.stdout and "(default: '0.0005')" in result.stdout
    assert "python main.py train" in result.stdout.splitlines()[0]


def test_bad_flag_value_is_one_line_exit_2():
    result = run_main("summary", "--architecture=alexnet9")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("main.py summary: error:") and "alexnet9" in lines[0]


def test_positional_argument_is_refused():
    result = run_main("summary", "alexnet")
    assert result.returncode == 2
    assert "unexpected argument 'alexnet'" in result.stderr


def test_flagfile_and_quiet_tensorflow(tmp_path):
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text("--architecture=alexnet_1tower\n")
    result = run_main("summary", f"--flagfile={flagfile}", unset=("TF_CPP_MIN_LOG_LEVEL",))
    assert result.returncode == 0, result.stderr
    assert "alexnet_1tower" in result.stdout
    assert "cuda" not in result.stderr.lower() and "oneDNN" not in result.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_the_commands_own_flags(command):
    result = run_main(command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"python main.py {command}" in result.stdout.splitlines()[0]
    assert any(f"\n{heading}:\n  --" in result.stdout for heading in flaghelp.GROUPS)  # grouped by task
    assert "absl.logging" not in result.stdout
