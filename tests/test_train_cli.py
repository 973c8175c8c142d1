"""`python main.py train`: bad flags refused in one line, the help, and a small real run on
Fashion-MNIST images (run folder layout, metrics, TensorBoard tags, 10-crop test accuracy well above
chance, final report)."""

import csv
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pipelines.sources import fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = fashion_mnist.DEBIAN_DIR  # installed by setup.sh: a test that needs it fails without it
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"]


def main_py(args, cwd, env=None, timeout=600):
    full_env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    full_env.pop("TF_CONFIG", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "train"] + args, cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def read_idx(name):
    """A Fashion-MNIST file of Debian's package (`setup.sh` installs it; missing, the test fails)."""
    path = os.path.join(FASHION, name)
    assert os.path.exists(path), f"{path} missing: setup.sh installs Debian's dataset-fashion-mnist"
    return fashion_mnist.read_idx(path)


def make_fashion_dir(data_dir, counts=None, size=72):
    """Real Fashion-MNIST images as prepared data (records.py contract): RGB JPEGs at `size`."""
    import tensorflow as tf

    from pipelines import records

    counts = counts or {"train": 2048, "validation": 256, "test": 500}
    images = read_idx("train-images-idx3-ubyte.gz")
    labels = read_idx("train-labels-idx1-ubyte.gz")
    test_images = read_idx("t10k-images-idx3-ubyte.gz")
    test_labels = read_idx("t10k-labels-idx1-ubyte.gz")
    sources = {"train": (images[:counts["train"]], labels[:counts["train"]]),
               "validation": (images[-counts["validation"]:], labels[-counts["validation"]:]),
               "test": (test_images[:counts["test"]], test_labels[:counts["test"]])}
    os.makedirs(data_dir, exist_ok=True)
    splits, train_pixels = {}, None
    for split, (x, y) in sources.items():
        rgb = tf.image.grayscale_to_rgb(tf.image.resize(x[..., None], (size, size)))
        rgb = tf.cast(tf.clip_by_value(tf.round(rgb), 0, 255), tf.uint8).numpy()
        if split == "train":
            train_pixels = rgb.astype(np.float64)
        path = os.path.join(data_dir, records.shard_name(split, 0, 1))
        with tf.io.TFRecordWriter(path) as writer:
            for image, label in zip(rgb, y):
                feature = {
                    records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[tf.io.encode_jpeg(image, quality=95).numpy()])),
                    records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                    records.HEIGHT: tf.train.Feature(int64_list=tf.train.Int64List(value=[size])),
                    records.WIDTH: tf.train.Feature(int64_list=tf.train.Int64List(value=[size])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        splits[split] = records.SplitInfo(num_examples=len(y), num_shards=1)
    classes = [records.ClassInfo(i, f"c{i}", name) for i, name in enumerate(NAMES)]
    records.write_metadata(data_dir, records.DatasetInfo(classes=classes, splits=splits, image_policy="alexnet",
                                                         image_size=size, source="fashion-mnist test"))
    write_stats(data_dir, train_pixels)
    return data_dir


def write_stats(data_dir, train_pixels):
    """`stats.npz` of the training images [N, H, W, 3] (mean image, mean RGB, RGB PCA), as `stats` writes it."""
    from pipelines import records

    pixels = train_pixels.reshape(-1, 3)
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False) + np.eye(3) * 1e-3)
    order = np.argsort(values)[::-1]
    np.savez(os.path.join(data_dir, records.STATS_FILE), mean_image=train_pixels.mean(0).astype(np.float32),
             mean_rgb=pixels.mean(0).astype(np.float32), eigenvalues=values[order].astype(np.float32),
             eigenvectors=vectors[:, order].astype(np.float32))


@pytest.mark.parametrize("args, message", [
    (["--architecture=alexnet_huge", "--data_dir=."], "value should be one of"),
    (["--data_dir=/no/such/dir"], "--data_dir=/no/such/dir: no such directory"),
    (["--data_dir=.", "--strategy=mirrored", "--logical_cpus=3", "--batch_size=128"],
     "--batch_size=128 is not divisible across 3 replicas"),
    (["--data_dir=.", "--strategy=multi_worker"], "TF_CONFIG"),
    (["--data_dir=.", "--architecture=vgg_a", "--strategy=towers"], "--strategy=towers"),
    (["--data_dir=.", "--momentum=1.5"], "--momentum=1.5"),
    (["--data_dir=.", "--architecture=alexnet", "--warm_start=."], "--warm_start"),
    (["--data_dir=.", "--image_size=32"], "--image_size=32"),
    (["--data_dir=.", "--learning_rate=-1"], "--learning_rate=-1"),
    (["--data_dir=.", "--strategy=gpu"], "--strategy"),
])
def test_bad_flags_refused_in_one_line(tmp_path, args, message):
    result = main_py(args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("main.py train: error:") and message in lines[0], lines
    assert not os.path.exists(tmp_path / "runs")


def test_help_cites_paper_sections(tmp_path):
    result = main_py(["--helpfull"], cwd=tmp_path, timeout=120)
    text = result.stdout + result.stderr
    for flag in ("--learning_rate", "--momentum", "--weight_decay", "--lr_max_reductions", "--strategy",
                 "--ten_crop_every", "--scale_jitter", "--warm_start", "--init_from", "mixed_precision"):
        assert flag in text, flag
    assert "[AlexNet §5]" in text and "[VGG §3.1]" in text


def tags_in(directory):
    import tensorflow as tf

    tags = set()
    for path in glob.glob(os.path.join(directory, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add((os.path.relpath(os.path.dirname(path), directory), value.tag))
    return tags


def test_small_real_run_learns_and_reports(tmp_path):
    data_dir = make_fashion_dir(str(tmp_path / "data"))
    args = [f"--data_dir={data_dir}", "--width=0.125", "--image_size=64", "--resize_size=72",
            "--init=glorot", "--learning_rate=0.03", "--lr_schedule=linear", "--warmup_epochs=0.5",
            "--epochs=3", "--batch_size=64", "--pca_jitter_std=0", "--ten_crop_every=2",
            "--test_split=test", "--checkpoint_every_steps=10", "--run_name=small", "--export_best",
            "--input_scale=0.25", "--export_dir=" + str(tmp_path / "saved_models"), "--noprogress"]
    result = main_py(args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    run_dir = tmp_path / "runs" / "small"
    assert f"tensorboard --logdir {os.path.join('runs', 'small', 'logs')}" in out
    assert "epoch 3/3 |" in out and "Done in" in out and "SavedModel:" in out
    with open(run_dir / "test_ten_crop.json") as f:
        test = json.load(f)
    assert test["count"] == 500 and test["top1_error"] < 0.45, test  # chance: 0.9
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["ten_crop_top1_error"] and {"val_top1_error", "top5_error", "images_per_sec",
                                              "learning_rate"} <= set(rows[0])
    assert (run_dir / "model.keras").exists() and glob.glob(str(run_dir / "checkpoints" / "ckpt-*.index"))
    tags = tags_in(str(run_dir / "logs"))
    for expected in [("small/train", "epoch/loss"), ("small/train", "epoch/top1_error"),
                     ("small/train", "training/learning_rate"), ("small/train", "training/images_per_sec"),
                     ("small/validation", "epoch/top5_error"), ("small/validation_10crop", "epoch/top1_error"),
                     ("small/test_10crop", "epoch/top1_error"), ("small/test_10crop", "epoch/top5_error"),
                     ("small", "weights/conv1_kernels"), ("small", "_hparams_/session_start_info")]:
        assert expected in tags, (expected, sorted(tags))
    assert not any(run == "." for run, _ in tags), sorted(tags)  # no stray run at the logdir's root
    versions = sorted(int(os.path.basename(os.path.dirname(path))) for path in
                      glob.glob(str(tmp_path / "saved_models" / "small" / "*" / "saved_model.pb")))
    assert len(versions) >= 2, versions  # --export_best's versions during the run, then the final export
    assert versions == list(range(1, len(versions) + 1))
    assert f"SavedModel:   {tmp_path / 'saved_models' / 'small' / str(versions[-1])}" in out


@pytest.mark.parametrize("extra", [["--mixed_precision"], ["--jit_compile"],
                                   ["--strategy=mirrored", "--logical_cpus=2"]])
def test_precision_xla_and_mirrored_flags_run(tmp_path, extra):
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 256, "validation": 64, "test": 64})
    result = main_py([f"--data_dir={data_dir}", "--width=0.125", "--image_size=64", "--resize_size=72",
                      "--epochs=1", "--steps_per_epoch=3", "--batch_size=32", "--pca_jitter_std=0",
                      "--noexport", "--noprogress", "--run_name=flags"] + extra, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "epoch 1/1 |" in result.stdout and "10-crop validation" in result.stdout


def test_vgg_scale_jitter_warm_start_and_init_from(tmp_path):
    """VGG §3.1: net A trained first; B warm-started from A; A at another scale initialised from the
    first run with a smaller learning rate."""
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 128, "validation": 32, "test": 32})
    common = [f"--data_dir={data_dir}", "--width=0.0625", "--image_size=32", "--epochs=1",
              "--steps_per_epoch=2", "--batch_size=16", "--noexport", "--noprogress", "--ten_crop_every=0"]
    result = main_py(common + ["--architecture=vgg_a", "--scale_jitter=40", "--run_name=a"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    result = main_py(common + ["--architecture=vgg_b", "--scale_jitter=40", "--run_name=b",
                               f"--warm_start={tmp_path / 'runs' / 'a'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Warm start from" in result.stdout and "[VGG §3.1]" in result.stdout
    result = main_py(common + ["--architecture=vgg_a", "--scale_jitter=40,56", "--run_name=a_jitter",
                               "--learning_rate=0.001", f"--init_from={tmp_path / 'runs' / 'a'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Initialised from" in result.stdout


def test_default_run_is_the_paper_config_with_the_preset_then_the_given_flags():
    """The default run (`main.py train` without --data_dir) is a config overlay: paper defaults, the
    preset, then what the user gave."""
    from keras_alexnet.training.config import TrainConfig
    from keras_alexnet.training.presets import DEFAULT_PRESET, default_run_config, describe

    config = default_run_config("data/fm", {"epochs": 2})
    assert config.schedule.epochs == 2 and config.model.width == 0.25 and config.run_name == "alexnet_fashion_mnist"
    assert config.model.architecture == "alexnet" and config.data.data_dir == "data/fm"
    assert config.data.image_size == 64 and config.data.resize_size == 72
    paper = TrainConfig()
    assert paper.model.width == 1.0 and paper.optimizer.learning_rate == 0.01 and paper.schedule.epochs == 0
    assert "--width=0.25" in describe(DEFAULT_PRESET) and "--epochs" not in describe({"width": 0.25})
