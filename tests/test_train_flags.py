"""Every `train` flag reaches the run's configuration: each flat `TrainConfig` setting has a flag (or is in
`train.NOT_FLAGS`, with its reason), and a value given on the command line is the value the config holds,
on prepared data (`--data_dir`, through the data fitting), in the default run (over the preset) and with
`--init_from` (over the source run's network and input scale).

The flags are parsed in a separate interpreter (`CHECKER`): commands define flags of the same name with
other defaults, so only one command's flags may exist in a process, as in `main.py`.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run as `python -c CHECKER ROOT DATA_DIR OTHER_DIR SOURCE_RUN`; prints one JSON object.
CHECKER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from absl import flags
FLAGS = flags.FLAGS
absl_flags = set(FLAGS)
from keras_alexnet.cli import train
from keras_alexnet.training import config as train_config

data_dir, other_dir, source = sys.argv[2:5]
SOURCES = ("data_dir", "tfds_name")
MODES = {"data_dir": [f"--data_dir={data_dir}"], "default run": [],
         "init_from": [f"--data_dir={data_dir}", f"--init_from={source}"]}
LRN = {"auto": None, "true": True, "false": False}


def config_of(args):
    FLAGS.unparse_flags()
    FLAGS(["main.py train", *args])
    return train._config()


def setting(config, name):
    part, field = train_config.flat_field_names()[name]
    return getattr(getattr(config, part) if part else config, field)


def other_value(name, flag, baseline):
    # (command-line argument, the value the config should then hold), unlike `baseline`
    if isinstance(flag, flags.BooleanFlag):
        return (f"--no{flag.name}" if baseline else f"--{flag.name}"), not baseline
    if isinstance(flag, flags.EnumFlag):
        values = {choice: LRN[choice] if name == "lrn" else choice for choice in flag.parser.enum_values}
        choice = next(choice for choice, value in values.items() if value != baseline)
        return f"--{flag.name}={choice}", values[choice]
    if name == "scale_jitter":
        return "--scale_jitter=300,400", (300, 400)
    if name == "data_dir":
        return f"--data_dir={other_dir}", other_dir
    if isinstance(flag.parser, flags.IntegerParser):
        return f"--{flag.name}={(baseline or 0) + 3}", (baseline or 0) + 3
    if isinstance(flag.parser, flags.FloatParser):
        return f"--{flag.name}={(baseline or 0) + 0.25}", (baseline or 0) + 0.25
    return f"--{flag.name}=given_{name}", f"given_{name}"


checked, failures = [], []
names = [name for name in train_config.flat_field_names() if name not in train.NOT_FLAGS]
for name in names:
    flag = FLAGS[train.FLAG_NAMES.get(name, name)]
    for mode, base in MODES.items():
        if (mode == "default run" and name in SOURCES) or (mode == "init_from" and name == "init_from"):
            continue
        if name in SOURCES:
            base = [arg for arg in base if not arg.startswith("--data_dir=")]
        baseline = setting(config_of(base), name)
        arg, expected = other_value(name, flag, baseline)
        try:
            got = setting(config_of(base + [arg]), name)
        except Exception as error:
            failures.append(f"{mode}: {arg}: {type(error).__name__}: {error}")
            continue
        checked.append([mode, arg])
        if got != expected or got == baseline:
            failures.append(f"{mode}: {arg} gave {name}={got!r} (expected {expected!r}, without it {baseline!r})")

not_given = config_of(MODES["init_from"])
setting_flags = {train.FLAG_NAMES.get(name, name) for name in names}
print(json.dumps({
    "checked": checked, "failures": failures,
    "flags_without_setting": sorted(set(FLAGS) - absl_flags - setting_flags),
    "settings_without_flag": sorted(name for name in names if train.FLAG_NAMES.get(name, name) not in FLAGS),
    "inherited": {"architecture": not_given.model.architecture, "width": not_given.model.width,
                  "input_scale": not_given.input_scale},
}))
"""


def _check(tmp_path) -> dict:
    from keras_alexnet import runs
    from keras_alexnet.training.config import ModelConfig, TrainConfig

    data_dir, other_dir, source = tmp_path / "data", tmp_path / "other", tmp_path / "source_run"
    for folder in (data_dir, other_dir, source):
        folder.mkdir()
    trained = TrainConfig(model=ModelConfig("alexnet_1tower", width=0.5), input_scale=0.125)
    runs.write_record(str(source), runs.RunRecord(
        architecture="alexnet_1tower", num_classes=10, class_names=[str(i) for i in range(10)], image_size=64,
        test_scale=72, mean="image", config=trained.to_dict()))
    done = subprocess.run([sys.executable, "-c", CHECKER, ROOT, str(data_dir), str(other_dir), str(source)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_setting_has_a_flag_whose_value_reaches_the_config(tmp_path):
    from keras_alexnet.cli.train import NOT_FLAGS
    from keras_alexnet.training.config import flat_field_names

    result = _check(tmp_path)
    assert result["failures"] == []
    assert result["settings_without_flag"] == []
    # The one train flag that is no setting: where the default run prepares its data (presets.py).
    assert result["flags_without_setting"] == ["default_data_root"]
    checked = {mode for mode, _ in result["checked"]}
    assert checked == {"data_dir", "default run", "init_from"}
    # Each setting with a flag, in each of the three ways (less the data sources in the default run and
    # --init_from given with itself).
    assert len(result["checked"]) == 3 * (len(flat_field_names()) - len(NOT_FLAGS)) - 3
    # Not given, the network and the input scale are the --init_from source's, not the flags' defaults.
    assert result["inherited"] == {"architecture": "alexnet_1tower", "width": 0.5, "input_scale": 0.125}


def test_settings_without_a_flag_are_real_settings_with_a_reason():
    from keras_alexnet.cli.train import FLAG_NAMES, NOT_FLAGS
    from keras_alexnet.training.config import flat_field_names

    fields = flat_field_names()
    assert set(NOT_FLAGS) <= set(fields) and all(len(reason) > 20 for reason in NOT_FLAGS.values())
    assert set(FLAG_NAMES) <= set(fields) and not set(FLAG_NAMES) & set(NOT_FLAGS)
