"""pipelines/default_data.py: Fashion-MNIST from IDX files through the same prepare path (RGB JPEG at
the training size, validation held out of train), its stats, and the TFDS fallback as far as it runs
offline."""

import fcntl
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipelines import default_data, image_codec, records
from pipelines.sources import fashion_mnist
from tests.image_fixtures import read_split, write_idx


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """Miniature Fashion-MNIST IDX files (real format, made-up pixels): 120 train, 30 test."""
    folder = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("test", 30)):
        images_file, labels_file = fashion_mnist.FILES[split]
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        write_idx(str(folder / images_file), images)
        write_idx(str(folder / labels_file), (np.arange(n) % 10).astype(np.uint8))
    return str(folder)


def test_prepares_splits_stats_and_returns_quickly_the_second_time(idx_dir, tmp_path):
    data_dir = default_data.ensure_default_data(str(tmp_path), image_size=32, num_workers=1, source_dir=idx_dir,
                                                validation_images=20)
    assert data_dir == os.path.join(str(tmp_path), "fashion_mnist_32")
    info = records.read_metadata(data_dir)
    assert {s: i.num_examples for s, i in info.splits.items()} == {"train": 100, "validation": 20, "test": 30}
    assert [c.text for c in info.classes][:2] == ["T-shirt/top", "Trouser"] and info.label_offset == 0
    assert info.image_policy == "alexnet" and info.image_size == 32

    source = fashion_mnist.load_idx(idx_dir)
    for split, arrays in (("train", source["train"]), ("validation", source["train"]), ("test", source["test"])):
        for record in read_split(data_dir, split)[:10]:
            index = int(record[records.FILENAME].decode().split("-")[-1].split(".")[0])
            image = tf.io.decode_jpeg(record[records.ENCODED]).numpy().astype(int)
            assert image.shape == (32, 32, 3)
            assert record[records.LABEL] == arrays[1][index]
            expected = image_codec.resize(arrays[0][index][..., None], 32, 32)[..., 0].astype(int)
            assert np.abs(image[..., 0] - expected).mean() < 12  # JPEG of noise, no chroma
    train_names = {r[records.FILENAME] for r in read_split(data_dir, "train")}
    assert not train_names & {r[records.FILENAME] for r in read_split(data_dir, "validation")}

    stats = np.load(os.path.join(data_dir, records.STATS_FILE))
    assert stats["mean_image"].shape == (32, 32, 3) and int(stats["num_images"]) == 100

    shard = records.list_shards(data_dir, "train")[0]
    os.utime(shard, (1, 1))
    assert default_data.ensure_default_data(str(tmp_path), 32, source_dir=idx_dir, validation_images=20) == data_dir
    assert os.stat(shard).st_mtime == 1  # complete: nothing redone


def test_debian_files_are_real_fashion_mnist():
    assert fashion_mnist.debian_available(), "setup.sh installs Debian's dataset-fashion-mnist"
    labels = fashion_mnist.read_idx(os.path.join(fashion_mnist.DEBIAN_DIR, "t10k-labels-idx1-ubyte.gz"))
    images = fashion_mnist.read_idx(os.path.join(fashion_mnist.DEBIAN_DIR, "t10k-images-idx3-ubyte.gz"))
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_tfds_fallback_when_idx_files_are_absent(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    calls = []

    def fake_load(name, split, batch_size, data_dir):
        calls.append((name, split, batch_size))
        n = 7 if split == "train" else 3
        return {"image": np.zeros((n, 28, 28, 1), np.uint8), "label": np.arange(n) % 10}

    monkeypatch.setattr(tfds, "load", fake_load)
    monkeypatch.setattr(tfds, "as_numpy", lambda x: x)
    arrays, description = fashion_mnist.load(str(tmp_path / "absent"))
    assert description == "tensorflow-datasets fashion_mnist"
    assert calls == [("fashion_mnist", "train", -1), ("fashion_mnist", "test", -1)]
    assert arrays["train"][0].shape == (7, 28, 28) and arrays["test"][1].tolist() == [0, 1, 2]


def test_tfds_fashion_mnist_classes_match_ours(tmp_path):
    import tensorflow_datasets as tfds

    builder = tfds.builder("fashion_mnist", data_dir=str(tmp_path))  # metadata only, no download
    assert builder.info.features["label"].names == [text for _, text in fashion_mnist.CLASSES]


def test_bad_idx_file_is_one_line_error(tmp_path):
    from keras_alexnet.errors import UserError

    (tmp_path / "x.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(UserError, match="x.gz: cannot read IDX file"):
        fashion_mnist.read_idx(str(tmp_path / "x.gz"))


_PREPARE_SCRIPT = """
import sys
from pipelines import default_data
print(default_data.ensure_default_data(sys.argv[1], 32, num_workers=1, source_dir=sys.argv[2], validation_images=20))
"""


def test_two_processes_preparing_at_once_take_turns(idx_dir, tmp_path):
    """Two real processes asking for the same folder together (the tasks of a study job array): the lock
    is held here until both wait on it; then one prepares and the other finds the folder complete."""
    root = str(tmp_path)
    data_dir = default_data.data_dir_for(root, 32)
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=repository)
    with open(data_dir + ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        processes = [subprocess.Popen([sys.executable, "-c", _PREPARE_SCRIPT, root, idx_dir], cwd=repository, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        waiting = f"default data: another process is preparing {data_dir}; waiting for it\n"
        for process in processes:  # each says it waits before anything else
            assert process.stderr.readline().endswith(waiting)
        assert not os.path.exists(data_dir)
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert [out for out, _ in outputs] == [data_dir + "\n"] * 2
    prepared = [err for _, err in outputs if f"prepare: {data_dir}: " in err]
    assert len(prepared) == 1, outputs  # the other found it complete
    assert default_data.is_complete(data_dir, 32)
    info = records.read_metadata(data_dir)
    assert {s: i.num_examples for s, i in info.splits.items()} == {"train": 100, "validation": 20, "test": 30}
    assert sorted(os.listdir(root)) == sorted([os.path.basename(data_dir), os.path.basename(data_dir) + ".lock"])
    assert len(read_split(data_dir, "train")) == 100
