"""`main.py COMMAND --help`: the flags grouped by what a user does, each flag once; paper sections only where
a paper defines the setting; the default run's values beside train's defaults."""

import os
import re
import subprocess
import sys

import pytest

from keras_alexnet.cli import flaghelp
from keras_alexnet.cli.commands import COMMANDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_GROUPS = ["model", "data and augmentation", "optimisation and schedule", "evaluation",
                "outputs and checkpoints", "speed", "distribution"]
# Settings no paper defines (where results go, how fast, how often to log, ...): their help cites none.
NOT_FROM_A_PAPER = {
    "train": ["runs_dir", "run_name", "export", "export_dir", "export_best", "mixed_precision", "jit_compile",
              "logical_cpus", "strict_records", "progress", "seed", "checkpoint_every_steps", "steps_per_call",
              "log_every_steps", "default_data_root", "data_dir", "tfds", "tfds_data_dir", "tfds_manual_dir",
              "stats_path", "shuffle_buffer", "cache", "steps_per_epoch", "warmup_epochs", "input_scale",
              "validation_split", "test_split", "data_service"],
    "study": ["studies_dir", "report_only", "seeds", "default_data_root", "data_dir", "epochs", "steps_per_epoch",
              "shard"],
    "figures": ["output_dir", "logdir", "batch_size", "split", "model", "tile", "kernel_scale"],
    "neighbors": ["output_dir", "batch_size", "tile", "max_train"],
    "evaluate": ["output_dir", "batch_size", "max_examples", "split", "model"],
    "export": ["base_dir", "name", "version", "max_pixels"],
    "predict": ["server", "model_name", "model_version", "batch_size", "output_csv"],
    "prepare": ["data_dir", "seed", "num_workers", "overwrite", "progress_interval", "jpeg_quality", "train_shards",
                "validation_holdout"],
    "stats": ["data_dir", "max_images"],
    "verify": ["data_dir"],
    "import_weights": ["run_dir", "weights", "mean_file", "class_names"],
}
# Settings a paper does define keep their section.
CITED = {"train": {"momentum": "[AlexNet §5]", "scale_jitter": "[VGG §3.1]", "pooling": "[AlexNet §3.4]",
                   "strategy": "[AlexNet §3.2, VGG §3.3]"},
         "evaluate": {"train_scale": "[VGG §4.2]"}}


def _help(command) -> str:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), command, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _parsed(text) -> dict:
    """{heading: {flag: its help block}} from a command's --help."""
    headings = set(flaghelp.GROUPS) | {flaghelp.OTHER}
    groups, heading, flag = {}, None, None
    for line in text.splitlines():
        if line.endswith(":") and line[:-1] in headings:
            heading, flag = line[:-1], None
            groups[heading] = {}
        elif heading and line.startswith("  --"):
            flag = re.match(r"  --(?:\[no\])?(\w+)", line).group(1)
            assert flag not in groups[heading], f"--{flag} twice under {heading}"
            groups[heading][flag] = line
        elif heading and flag and line.startswith("      "):
            groups[heading][flag] += "\n" + line
    return groups


def _own_flags(command) -> set:
    """The flags the command's module defines (absl's own left out)."""
    code = ("import importlib, sys\nfrom absl import flags\nbefore = set(flags.FLAGS)\n"
            "importlib.import_module(sys.argv[1])\nprint(' '.join(sorted(set(flags.FLAGS) - before)))")
    out = subprocess.run([sys.executable, "-c", code, COMMANDS[command][0]], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


@pytest.fixture(scope="module")
def helps():
    return {command: _help(command) for command in COMMANDS}


def test_train_help_is_grouped_by_task_with_every_flag_in_exactly_one_group(helps):
    groups = _parsed(helps["train"])
    assert list(groups) == TRAIN_GROUPS
    placed = [flag for flags in groups.values() for flag in flags]
    assert len(placed) == len(set(placed))
    assert set(placed) == _own_flags("train")
    assert {"momentum", "lr_schedule", "batch_size"} <= set(groups["optimisation and schedule"])
    assert {"scale_jitter", "pca_jitter_std", "data_dir"} <= set(groups["data and augmentation"])
    assert {"strategy", "logical_cpus", "data_service"} == set(groups["distribution"])
    assert "--verbosity=" not in helps["train"] and "--logtostderr" not in helps["train"]  # absl's own


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_lists_each_of_its_flags_once_under_a_task(helps, command):
    groups = _parsed(helps[command])
    assert flaghelp.OTHER not in groups, f"{command}: flags without a group: {sorted(groups.get('other', {}))}"
    placed = [flag for flags in groups.values() for flag in flags]
    assert sorted(placed) == sorted(_own_flags(command))
    assert "absl.logging" not in helps[command] and "--logtostderr" not in helps[command]


def test_paper_sections_only_where_a_paper_defines_the_setting(helps):
    for command, names in NOT_FROM_A_PAPER.items():
        blocks = {flag: block for flags in _parsed(helps[command]).values() for flag, block in flags.items()}
        for name in names:
            assert "§" not in blocks[name], f"{command} --{name} cites a paper:\n{blocks[name]}"
    for command, cited in CITED.items():
        blocks = {flag: block for flags in _parsed(helps[command]).values() for flag, block in flags.items()}
        for name, section in cited.items():
            assert blocks[name].rstrip().endswith(section), blocks[name]


def test_train_help_shows_the_default_runs_values_beside_the_defaults(helps):
    from keras_alexnet.training.presets import DEFAULT_PRESET

    blocks = {flag: block for flags in _parsed(helps["train"]).values() for flag, block in flags.items()}
    head = {flag: block.splitlines()[0] + block.splitlines()[1] for flag, block in blocks.items()}
    assert "(default: 0; default run: 64)" in head["batch_size"]
    assert "(default: 0.01; default run: 0.04)" in head["learning_rate"]
    assert "(default: plateau; default run: linear)" in head["lr_schedule"]
    assert "(default: false; default run: true)" in head["cache"]
    assert "(default run: alexnet_fashion_mnist)" in head["run_name"]
    changed = {name for name in DEFAULT_PRESET if "default run:" in head[name]}
    assert changed == set(DEFAULT_PRESET) - {"architecture"}  # the preset's AlexNet is the default anyway
    assert not [flag for flag in set(head) - set(DEFAULT_PRESET) if "default run:" in head[flag]]
    assert "default run:" not in helps["summary"]  # summary has the model flags, not the default run
