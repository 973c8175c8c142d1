"""Facts written once: file names of run and data folders, metric keys, precision policies and the studies'
scales are defined in one module each and read from there; no other module spells them out."""

import ast
import os
import subprocess
import sys

import pytest

from keras_alexnet import export, metric_names, registry, runs
from keras_alexnet.study import definitions
from keras_alexnet.training import precision
from pipelines import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = ("keras_alexnet", "pipelines", "callbacks", "main.py")

# Each fact's string and the one module that defines it.
HOMES = {
    **dict.fromkeys(("run.json", "model.keras", "checkpoints", "logs", "metrics.csv"), "keras_alexnet/runs.py"),
    **dict.fromkeys(("stats.npz", "dataset.json", "labels.txt"), "pipelines/records.py"),
    **dict.fromkeys(("top1_error", "top5_error", "val_top1_error", "val_", "ten_crop_"),
                    "keras_alexnet/metric_names.py"),
    **dict.fromkeys(("mixed_float16", "mixed_bfloat16"), "keras_alexnet/training/precision.py"),
    **dict.fromkeys(("saved_models", "saved_model.pb"), "keras_alexnet/export.py"),
}

# Strings that are another fact: tensorflow-datasets' own ImageNet label file.
OTHER_FACTS = {("keras_alexnet/cli/import_weights.py", "labels.txt")}


def _modules(root, code):
    for top in code:
        path = os.path.join(root, top)
        if os.path.isfile(path):
            yield top
            continue
        for folder, _, files in os.walk(path):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(folder, name), root)


def _docstrings(tree) -> set:
    """The ids of the string constants that are docstrings (prose may name a file)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def literal_copies(root=ROOT, code=CODE) -> list:
    """"module:line: string (its home)" of every string constant outside its home module equal to a fact."""
    copies = []
    for module in _modules(root, code):
        with open(os.path.join(root, module), encoding="utf-8") as f:
            tree = ast.parse(f.read(), module)
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in HOMES
                    and id(node) not in docstrings and HOMES[node.value] != module.replace(os.sep, "/")
                    and (module.replace(os.sep, "/"), node.value) not in OTHER_FACTS):
                copies.append(f"{module}:{node.lineno}: {node.value!r} (defined in {HOMES[node.value]})")
    return copies


def test_each_fact_is_spelled_in_its_home_module_only():
    assert literal_copies() == []


def test_the_homes_hold_the_facts():
    """The strings the scan looks for are the values of the constants everything reads."""
    assert (runs.RUN_FILE, runs.MODEL_FILE, runs.CHECKPOINTS_DIR, runs.LOGS_DIR, runs.METRICS_FILE) == (
        "run.json", "model.keras", "checkpoints", "logs", "metrics.csv")
    assert (records.STATS_FILE, records.METADATA_FILE, records.LABELS_FILE) == (
        "stats.npz", "dataset.json", "labels.txt")
    assert runs.STATS_FILE == records.STATS_FILE
    assert metric_names.ERRORS == ("top1_error", "top5_error")
    assert (metric_names.VALIDATION_PREFIX, metric_names.TEN_CROP_PREFIX, metric_names.VAL_TOP1_ERROR) == (
        "val_", "ten_crop_", "val_top1_error")
    assert (precision.policy_name(gpus=1), precision.policy_name(gpus=0)) == ("mixed_float16", "mixed_bfloat16")
    assert (export.BASE_DIR, export.SAVED_MODEL_FILE) == ("saved_models", "saved_model.pb")
    assert set(HOMES) >= {runs.RUN_FILE, records.STATS_FILE, *metric_names.ERRORS, metric_names.VAL_TOP1_ERROR,
                          precision.GPU_POLICY, precision.CPU_POLICY}


def test_the_scan_finds_a_copy(tmp_path):
    """A module that spells a fact out is named, with its line; a docstring naming the file is prose."""
    (tmp_path / "keras_alexnet").mkdir()
    (tmp_path / "keras_alexnet" / "copy.py").write_text('"""Writes metrics.csv."""\nimport os\n'
                                                        'PATH = os.path.join("run", "metrics.csv")\n')
    assert literal_copies(str(tmp_path), ("keras_alexnet",)) == [os.path.join("keras_alexnet", "copy.py")
                                + ":3: 'metrics.csv' (defined in keras_alexnet/runs.py)"]


def test_the_scale_flag_offers_the_studies_scales():
    code = ("from absl import flags; import keras_alexnet.cli.study; "
            "print(','.join(flags.FLAGS['scale'].parser.enum_values), flags.FLAGS['scale'].default)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [",".join(definitions.SCALES), definitions.SCALES[0]]
    assert definitions.SCALES == ("cpu", "paper")
    assert all(tuple(study.scales) == definitions.SCALES for study in definitions.STUDIES.values())


@pytest.mark.parametrize("scale, architecture, batch_size, epochs", [
    (definitions.ALEXNET_PAPER, "alexnet", 128, 90),  # AlexNet §5
    (definitions.VGG_PAPER, "vgg_a", 256, 74),  # VGG §3.1
])
def test_the_paper_scales_take_the_papers_recipe_from_the_registry(scale, architecture, batch_size, epochs):
    assert (scale.settings["batch_size"], scale.settings["epochs"]) == (batch_size, epochs)
    spec = registry.spec(architecture)
    assert (spec.batch_size, spec.epochs) == (batch_size, epochs)
