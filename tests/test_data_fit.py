"""`train` on a prepared folder: the sizes and batch not given follow the data (dataset.json), and say so."""

import json
import os

import pytest

from keras_alexnet.errors import FlagError
from keras_alexnet.training import data_fit
from keras_alexnet.training.config import TrainConfig, config_from_values
from pipelines import records
from tests.test_train_cli import main_py, make_fashion_dir

PAPER = {"architecture": "alexnet", "image_size": 224, "resize_size": 256, "batch_size": 0, "scale_jitter": None}


def _data(tmp_path, stored=72, train=34, policy="alexnet"):
    data_dir = str(tmp_path / f"data_{stored}_{train}_{policy}")
    classes = [records.ClassInfo(0, "a", "a"), records.ClassInfo(1, "b", "b")]
    splits = {"train": records.SplitInfo(train, 1), "validation": records.SplitInfo(6, 1)}
    records.write_metadata(data_dir, records.DatasetInfo(classes, splits, image_policy=policy, image_size=stored))
    return data_dir


def _fit(tmp_path, data_dir, given=(), **values):
    return data_fit.fit_to_data(dict(PAPER, **values), set(given), data_dir, str(tmp_path / "runs" / "new"))


def test_sizes_and_batch_not_given_follow_the_data(tmp_path):
    values, notes = _fit(tmp_path, _data(tmp_path, stored=72, train=34))
    assert (values["resize_size"], values["image_size"], values["batch_size"]) == (72, 63, 32)  # 72*224/256
    assert len(notes) == 2 and "stored at 72 px" in notes[0] and "--image_size=63" in notes[0]
    assert notes[1].startswith("Batch 32: the paper's 128 is more than the 34 training examples")
    values, notes = _fit(tmp_path, _data(tmp_path, stored=144, train=40_000))
    assert (values["resize_size"], values["image_size"], values["batch_size"]) == (144, 126, 0) and len(notes) == 1
    values, _ = _fit(tmp_path, _data(tmp_path, stored=256, train=5), architecture="vgg_a")
    assert (values["resize_size"], values["image_size"], values["batch_size"]) == (256, 224, 4)  # the paper's frame


@pytest.mark.parametrize("limit, expected", [(1, 1), (2, 2), (3, 2), (34, 32), (64, 64), (127, 64)])
def test_largest_power_of_two(limit, expected):
    assert data_fit.largest_power_of_two(limit) == expected


def test_given_settings_win(tmp_path):
    data_dir = _data(tmp_path, stored=72, train=34)
    both = {"image_size": 64, "resize_size": 72, "batch_size": 8}
    values, notes = _fit(tmp_path, data_dir, given=both, **both)
    assert {k: values[k] for k in both} == both and notes == []
    values, _ = _fit(tmp_path, data_dir, given={"image_size"}, image_size=100)
    assert (values["resize_size"], values["image_size"]) == (100, 100)  # the crop asked for, not refused
    values, _ = _fit(tmp_path, data_dir, given={"resize_size"}, resize_size=96)
    assert (values["resize_size"], values["image_size"]) == (96, 84)
    with pytest.raises(FlagError, match=f"^--batch_size=128 is larger than the 34 training examples of {data_dir}$"):
        _fit(tmp_path, data_dir, given={"batch_size"}, batch_size=128)
    values, _ = _fit(tmp_path, data_dir, given={"batch_size", "steps_per_epoch"}, batch_size=128, steps_per_epoch=3)
    assert values["batch_size"] == 128  # a set number of steps reads the split more than once


def test_other_stores_and_scale_jitter_keep_the_paper_sizes(tmp_path):
    for data_dir, extra in ((_data(tmp_path, stored=512, policy="vgg"), {}),
                            (_data(tmp_path, stored=0, policy="none"), {}),
                            (_data(tmp_path, stored=72), {"scale_jitter": (64, 80), "architecture": "vgg_a"}),
                            (str(tmp_path), {})):  # no dataset.json: tensorflow/models shards
        values, _ = _fit(tmp_path, data_dir, **extra)
        assert (values["resize_size"], values["image_size"]) == (256, 224), data_dir


def test_stored_size_below_the_architecture_input_is_refused(tmp_path):
    data_dir = _data(tmp_path, stored=48)
    with pytest.raises(FlagError, match=r"stored at 48 px, below the 63 px that --architecture=alexnet takes: "
                                        r"prepare them with --stored_size=63 or more"):
        _fit(tmp_path, data_dir)
    values, _ = _fit(tmp_path, data_dir, architecture="vgg_a")
    assert (values["resize_size"], values["image_size"]) == (48, 42)


def test_a_resumed_run_keeps_its_recorded_settings(tmp_path):
    from keras_alexnet import runs

    run_dir = str(tmp_path / "runs" / "old")
    recorded = config_from_values({"data_dir": "d", "image_size": 224, "resize_size": 256, "batch_size": 128})
    runs.write_record(run_dir, runs.RunRecord(architecture="alexnet", num_classes=2, class_names=["a", "b"],
                                              image_size=224, test_scale=256, mean="image",
                                              config=recorded.to_dict()))
    os.makedirs(os.path.join(run_dir, "checkpoints"))
    with open(os.path.join(run_dir, "checkpoints", "checkpoint"), "w") as f:  # it trained: a resume
        f.write('model_checkpoint_path: "ckpt-1"\n')
    values, notes = data_fit.fit_to_data(dict(PAPER), set(), _data(tmp_path), run_dir)
    assert (values["resize_size"], values["image_size"], values["batch_size"]) == (256, 224, 128) and notes == []


def test_cli_refuses_a_too_small_store_or_batch_before_tensorflow(tmp_path):
    data_dir = _data(tmp_path, stored=40)
    result = main_py([f"--data_dir={data_dir}"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"main.py train: error: --data_dir={data_dir}: its images are stored at 40 px, "
                                     "below the 63 px that --architecture=alexnet takes: prepare them with "
                                     "--stored_size=63 or more")
    data_dir = _data(tmp_path, stored=72, train=34)
    result = main_py([f"--data_dir={data_dir}", "--batch_size=128"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == (
        f"main.py train: error: --batch_size=128 is larger than the 34 training examples of {data_dir}")


def test_bare_command_on_a_small_folder_trains_and_says_what_it_chose(tmp_path):
    """The README's own-images flow on 2 classes x 20 images (34 for training): no size or batch flag."""
    data_dir = make_fashion_dir(str(tmp_path / "mine"), {"train": 34, "validation": 6, "test": 6}, size=72)
    result = main_py([f"--data_dir={data_dir}", "--width=0.125", "--epochs=1", "--noexport", "--noprogress",
                      "--run_name=mine"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("Sizes from the data, stored at 72 px") and "--resize_size=72 --image_size=63"
               in line for line in lines), lines
    assert any(line.startswith("Batch 32: the paper's 128 is more than the 34 training examples") for line in lines)
    assert "1 steps of 32 per epoch" in result.stdout
    with open(tmp_path / "runs" / "mine" / "run.json") as f:
        data = json.load(f)["config"]["data"]
    assert (data["image_size"], data["resize_size"], data["batch_size"]) == (63, 72, 32)
    assert TrainConfig().data.image_size == 224  # the library's defaults are still the paper's


def test_a_fine_tune_takes_its_sources_crop(tmp_path):
    """fc6's input follows the crop, so a fine-tune from an imported Caffe AlexNet (227 px crops) on data
    stored at 256 px crops 227, not the paper's 224, unless --image_size is given."""
    from keras_alexnet import runs

    source = str(tmp_path / "runs" / "bvlc")
    runs.write_record(source, runs.RunRecord(architecture="alexnet", num_classes=1000, class_names=["c"] * 1000,
                                             image_size=227, test_scale=256, mean="image", origin="import"))
    data_dir = _data(tmp_path, stored=256, train=44)
    values, notes = _fit(tmp_path, data_dir, init_from=source)
    assert (values["resize_size"], values["image_size"]) == (256, 227)
    assert notes[0].startswith(f"Crop 227 px: the crop of --init_from={source}") and "(given)" in notes[1]
    values, notes = _fit(tmp_path, data_dir, given=("image_size",), init_from=source, image_size=200)
    assert values["image_size"] == 200 and not any(note.startswith("Crop") for note in notes)
    architecture_left_out = {name: value for name, value in PAPER.items() if name != "architecture"}
    values, _ = data_fit.fit_to_data(dict(architecture_left_out, init_from=source), set(), data_dir,
                                     str(tmp_path / "runs" / "new"))
    assert values["image_size"] == 227  # the network, too, is the source's when not given


def test_a_start_that_stopped_before_its_first_checkpoint_is_not_resumed(tmp_path):
    """A first start refused after writing run.json (say, a crop that did not fit its --init_from) left no
    checkpoint: the next start fits its sizes afresh instead of keeping the recorded ones."""
    from keras_alexnet import runs

    run_dir = tmp_path / "runs" / "new"
    recorded = TrainConfig().to_dict()
    recorded["data"].update(image_size=100, resize_size=120, batch_size=8)
    runs.write_record(str(run_dir), runs.RunRecord(architecture="alexnet", num_classes=2, class_names=["a", "b"],
                                                   image_size=100, test_scale=120, mean="image", config=recorded))
    data_dir = _data(tmp_path, stored=72, train=34)
    values, _ = _fit(tmp_path, data_dir)
    assert (values["resize_size"], values["image_size"], values["batch_size"]) == (72, 63, 32)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    values, notes = _fit(tmp_path, data_dir)
    assert (values["resize_size"], values["image_size"], values["batch_size"]) == (120, 100, 8) and notes == []
