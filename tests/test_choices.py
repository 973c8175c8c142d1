"""Each choice list of a setting is defined once, with its paper section (`keras_alexnet.registry` for the
model options, `pipelines.input_config.MEANS`, `training.strategy.STRATEGIES`):
a choice added there is a choice of the train flag and of the config check, and the builders check the
same lists. (The learning-rate schedules' table, `callbacks.lr_schedules.SCHEDULES`, has its own test in
tests/test_lr_schedules.py.)"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run as `python -c CHOICES ROOT`: a choice appended to each list in its one place, then train's flags
# defined; prints {flag: [the flag's choices, the config check's message on a config with the new choice]}.
CHOICES = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from keras_alexnet import registry
from pipelines import input_config
ONE_PLACE = {"lrn_convention": (registry, "LRN_CONVENTIONS"), "pooling": (registry, "POOLINGS"),
             "init": (registry, "INITS"), "activation": (registry, "ACTIVATIONS"), "mean": (input_config, "MEANS")}
for flag, (module, name) in ONE_PLACE.items():
    setattr(module, name, getattr(module, name) + (f"added_{flag}",))
from keras_alexnet.training import strategy  # (imports the training configuration: after the lists above)
ONE_PLACE["strategy"] = (strategy, "STRATEGIES")
strategy.STRATEGIES += ("added_strategy",)
from absl import flags
from keras_alexnet.cli import train  # defines train's flags
from keras_alexnet.errors import FlagError
from keras_alexnet.training import config as train_config
found = {}
for flag in ONE_PLACE:
    config = train_config.config_from_values({flag: f"added_{flag}", "data_dir": sys.argv[1]})
    try:
        config.validate()
        message = ""
    except FlagError as error:
        message = str(error)
    found[flag] = [flags.FLAGS[flag].parser.enum_values, message]
print(json.dumps(found))
"""


def test_a_choice_added_in_its_one_place_is_a_choice_of_the_flag_and_of_the_config():
    done = subprocess.run([sys.executable, "-c", CHOICES, ROOT], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(found) == 6
    for flag, (choices, message) in found.items():
        assert choices[-1] == f"added_{flag}", (flag, choices)
        assert f"--{flag}=added_{flag}" not in message, message  # the config check knows the choice too


def test_the_lists_are_the_ones_the_builders_check():
    from callbacks import lr_schedules
    from keras_alexnet import alexnet, initializers, lrn, registry
    from keras_alexnet.training import config

    assert alexnet.POOLINGS is registry.POOLINGS and alexnet.LRN_POSITIONS is registry.LRN_POSITIONS
    assert initializers.INITS is registry.INITS and lrn.CONVENTIONS is registry.LRN_CONVENTIONS
    assert config.SCHEDULES is lr_schedules.SCHEDULES
    with pytest.raises(ValueError, match="choose from: paper, caffe, glorot"):
        initializers.init_for("he", "alexnet", "conv1")
