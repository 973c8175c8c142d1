"""Evaluation protocols (AlexNet §4.1, VGG §3.2), fusion by softmax averaging, and the error tables.

The crops come from `pipelines.input_pipeline.build_eval_dataset` over a tiny set of records written
here; the references slice the rescaled images with NumPy and average `model.predict` by hand.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_alexnet.evaluation import ensemble, protocols, tables
from pipelines import eval_crops, records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES, SIZE = 5, 32
SHAPES = [(40, 52), (52, 40), (40, 40), (45, 61), (64, 48), (41, 43)]
MEAN_RGB = np.array([125.0, 115.0, 105.0], np.float32)


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, shape + (3,), dtype=np.uint8) for shape in SHAPES]


def _labels():
    return [i % CLASSES for i in range(len(SHAPES))]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("data"))
    path = os.path.join(folder, records.shard_name("validation", 0, 1))
    with tf.io.TFRecordWriter(path) as writer:
        for image, label in zip(_images(), _labels()):
            feature = {
                records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(image).numpy()])),
                records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    classes = [records.ClassInfo(i, f"n{i:08d}", f"thing {i}") for i in range(CLASSES)]
    records.write_metadata(folder, records.DatasetInfo(
        classes=classes, splits={"validation": records.SplitInfo(len(SHAPES), 1)}, label_offset=0))
    mean_image = np.broadcast_to(MEAN_RGB, (40, 40, 3)).astype(np.float32)
    np.savez(os.path.join(folder, records.STATS_FILE), mean_image=mean_image, mean_rgb=MEAN_RGB)
    return folder


def tiny_vgg(seed):
    from keras_alexnet.registry import build_model

    keras.utils.set_random_seed(seed)
    return build_model("vgg_a", num_classes=CLASSES, input_shape=(SIZE, SIZE, 3), width=0.125)


@pytest.fixture(scope="module")
def model():
    return tiny_vgg(1)


def _dataset(data_dir, protocol, scale, batch_size=4):
    from pipelines.input_pipeline import InputConfig, build_eval_dataset

    config = InputConfig(data_dir=data_dir, split="validation", image_size=SIZE, resize_size=scale,
                         mean="rgb", batch_size=batch_size, pca_jitter_std=0.0)
    return build_eval_dataset(config, protocol, scale)


def _rescaled(image, scale):
    from pipelines.eval_crops import resize_shorter_side

    return resize_shorter_side(image, scale).numpy() - MEAN_RGB


def _numpy_crops(image, protocol):
    h, w = image.shape[:2]
    s = SIZE
    if protocol == "center":
        return image[None, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    if protocol == "ten_crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[top:top + side, left:left + side]
        b = side - s
        crops = [square[:s, :s], square[:s, b:], square[b:, :s], square[b:, b:],
                 square[b // 2:b // 2 + s, b // 2:b // 2 + s]]
    else:  # multi_crop: 5 x 5 grid, first and last crops on the borders, plus mirrors
        ys = np.floor(np.linspace(0, h - s, 5) + 0.5).astype(int)
        xs = np.floor(np.linspace(0, w - s, 5) + 0.5).astype(int)
        crops = [image[y:y + s, x:x + s] for y in ys for x in xs]
    crops = np.stack(crops)
    return np.concatenate([crops, crops[:, :, ::-1]])


@pytest.mark.parametrize("protocol, expected_views", [("center", 1), ("ten_crop", 10), ("multi_crop", 50)])
def test_crop_protocols_average_softmax_over_numpy_crops(model, data_dir, protocol, expected_views):
    scale = 40
    run = protocols.run_protocol(
        "m", protocol, scale, lambda v: eval_crops.crop_probabilities(lambda x: model(x, training=False), v),
        _dataset(data_dir, protocol, scale))
    assert run.labels.tolist() == _labels()
    for i, image in enumerate(_images()):
        crops = _numpy_crops(_rescaled(image, scale), protocol)
        assert len(crops) == expected_views
        reference = model.predict(crops, verbose=0).mean(axis=0)
        np.testing.assert_allclose(run.probabilities[i], reference, rtol=1e-4, atol=1e-5)


def test_dense_at_training_size_is_the_model_and_its_flip(model):
    """VGG §3.2 dense evaluation: at 32x32 the score map is 1x1, so dense = mean of image and flip."""
    from keras_alexnet.dense_eval import to_fully_convolutional

    fcn = to_fully_convolutional(model)
    x = np.random.default_rng(2).normal(0, 60, (3, SIZE, SIZE, 3)).astype(np.float32)
    dense = protocols.dense_probabilities(lambda t: fcn(t, training=False)["score_map"], x).numpy()
    reference = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(dense, reference, rtol=1e-4, atol=1e-6)


def test_dense_averages_the_score_map_then_the_flip():
    """A stand-in score map: the average over positions, then over image and flip, by NumPy."""
    rng = np.random.default_rng(3)
    maps = rng.uniform(size=(2, 2, 3, 4, CLASSES)).astype(np.float32)  # [image/flip, B, h, w, C]
    images = rng.normal(size=(2, 7, 9, 3)).astype(np.float32)
    seen = []

    def score_map(batch):
        seen.append(batch.numpy())
        return tf.constant(maps.reshape(4, 3, 4, CLASSES))

    out = protocols.dense_probabilities(score_map, images).numpy()
    np.testing.assert_array_equal(seen[0][:2], images)
    np.testing.assert_array_equal(seen[0][2:], images[:, :, ::-1])
    np.testing.assert_allclose(out, maps.mean(axis=(2, 3)).mean(axis=0), rtol=1e-6)


def test_dense_protocol_over_records_matches_whole_image(model, data_dir):
    from keras_alexnet.dense_eval import to_fully_convolutional

    fcn = to_fully_convolutional(model)
    scale = 64
    run = protocols.run_protocol(
        "m", "dense", scale, lambda v: protocols.dense_probabilities(lambda t: fcn(t)["score_map"], v),
        _dataset(data_dir, "dense", scale))
    for i, image in enumerate(_images()):
        whole = _rescaled(image, scale)[None]
        maps = [fcn.predict(x, verbose=0)["score_map"] for x in (whole, whole[:, :, ::-1])]
        assert maps[0].shape[1] * maps[0].shape[2] > 1  # a real map, not one position
        reference = np.mean([m.mean(axis=(1, 2))[0] for m in maps], axis=0)
        np.testing.assert_allclose(run.probabilities[i], reference, rtol=1e-4, atol=1e-6)


def test_multi_scale_sets():
    assert protocols.multi_scale(384) == [352, 384, 416]
    assert protocols.multi_scale((256, 512)) == [256, 384, 512]


def test_top_k_error_matches_in_top_k():
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(10), size=200).astype(np.float32)
    labels = rng.integers(0, 10, 200)
    for k in (1, 5):
        hits = tf.math.in_top_k(tf.constant(labels, tf.int32), tf.constant(probs), k).numpy()
        assert tables.top_k_error(probs, labels, k) == pytest.approx(100 * (1 - hits.mean()))


def test_ties_are_not_hits():
    """A constant output ranks no label: every label misses at every k below the class count (as in
    training, tests/test_top_k.py), and hits at k = the class count."""
    probs = np.full((7, 7), 1 / 7, np.float32)
    labels = np.arange(7)
    assert tables.top_k_error(probs, labels, 1) == 100.0
    assert tables.top_k_error(probs, labels, 5) == 100.0
    assert tables.top_k_error(probs, labels, 7) == 0.0


def _run(model, protocol, scale, probabilities, labels, seconds=1.0):
    return protocols.Run(model, protocol, scale, np.asarray(probabilities, np.float32), np.asarray(labels), seconds)


def test_ensemble_and_multi_scale_rows_average_softmax():
    labels = [0, 1]
    # Model A is right on example 0 only, model B on example 1 only; their average is right on both.
    a = [[0.6, 0.4, 0.0], [0.6, 0.4, 0.0]]
    b = [[0.45, 0.55, 0.0], [0.1, 0.9, 0.0]]
    runs = [_run("A", "dense", 256, a, labels), _run("B", "dense", 256, b, labels),
            _run("A", "dense", 384, b, labels, 3.0), _run("B", "dense", 384, a, labels, 3.0)]
    rows = {(r["model"], r["test scale Q"]): r for r in ensemble.table_rows(runs)}
    assert set(rows) == {(m, q) for m in ("A", "B", "A + B") for q in ("256", "384", "256,384")}
    assert rows[("A", "256")]["top-1 val. error (%)"] == 50.0
    assert rows[("A + B", "256")]["top-1 val. error (%)"] == 0.0  # (a + b) / 2 = [.525,.475,0] / [.35,.65,0]
    assert rows[("A + B", "256")]["top-5 val. error (%)"] == 0.0
    assert rows[("A", "256,384")]["top-1 val. error (%)"] == 0.0  # A's two scales average to a + b
    assert rows[("A", "256")]["images/s"] == 2.0 and rows[("A", "256,384")]["images/s"] == 0.5
    assert rows[("A + B", "256,384")]["images/s"] == pytest.approx(2 / 8, abs=0.05)


def test_dense_plus_multi_crop_row_and_mismatched_runs():
    labels = [2, 0]
    runs = [_run("D", "dense", 256, [[0.6, 0, 0.4], [0.2, 0.8, 0]], labels),
            _run("D", "multi_crop", 256, [[0.1, 0, 0.9], [0.9, 0.1, 0]], labels)]
    rows = ensemble.table_rows(runs)
    assert [r["evaluation method"] for r in rows] == ["dense", "multi-crop (50/scale)", "dense + multi-crop"]
    assert [r["top-1 val. error (%)"] for r in rows] == [100.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="different examples"):
        protocols.average([runs[0], _run("E", "dense", 256, [[1, 0, 0], [1, 0, 0]], [0, 0])])


def test_models_at_their_own_test_scales_fuse_by_position():
    """An AlexNet evaluated at Q=256 and a VGG net at Q=384 (each run's own scale): the fusion averages
    the two and its row names both scales; different numbers of scales or classes are refused by name."""
    labels = [0, 1]
    a = [[0.6, 0.4, 0.0], [0.6, 0.4, 0.0]]
    b = [[0.45, 0.55, 0.0], [0.1, 0.9, 0.0]]
    runs = [_run("alexnet", "center", 256, a, labels), _run("vgg_a", "center", 384, b, labels)]
    rows = {(r["model"], r["test scale Q"]): r for r in ensemble.table_rows(runs)}
    assert set(rows) == {("alexnet", "256"), ("vgg_a", "384"), ("alexnet + vgg_a", "256 / 384")}
    assert rows[("alexnet", "256")]["top-1 val. error (%)"] == 50.0
    assert rows[("alexnet + vgg_a", "256 / 384")]["top-1 val. error (%)"] == 0.0  # (a + b) / 2
    assert set(r["model"] for r in ensemble.table_rows(runs, fuse=False)) == {"alexnet", "vgg_a"}
    with pytest.raises(ValueError, match=r"different numbers of test scales: alexnet at Q=256; vgg_a at Q=384,512"):
        ensemble.table_rows(runs + [_run("vgg_a", "center", 512, b, labels)])
    with pytest.raises(ValueError, match="vgg_a has 2 classes and alexnet 3; cannot average"):
        ensemble.table_rows([runs[0], _run("vgg_a", "center", 384, [[0.5, 0.5], [0.1, 0.9]], labels)])


def test_markdown_and_csv(tmp_path):
    runs = [_run("A", "center", 224, [[0.9, 0.1], [0.2, 0.8]], [0, 0])]
    table = tables.error_table(ensemble.table_rows(runs))
    csv_path, md_path = tables.write_table(table, str(tmp_path))
    lines = open(md_path).read().splitlines()
    assert lines[0] == "| " + " | ".join(tables.COLUMNS) + " |"
    assert lines[1] == "| --- | --- | --- | ---: | ---: | ---: |"
    assert lines[2] == "| A | centre crop | 224 | 50.00 | 0.00 | 2.0 |"
    import pandas as pd

    assert pd.read_csv(csv_path).to_dict("records")[0]["top-1 val. error (%)"] == 50.0


def _main(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def test_evaluate_command_on_a_tiny_run(data_dir, tmp_path):
    """Two checkpoints and their fusion; dense, multi-crop, two scales; plus the SavedModel of one."""
    from keras_alexnet.export import export_saved_model

    paths = []
    for seed in (5, 6):
        path = str(tmp_path / f"m{seed}.keras")
        tiny_vgg(seed).save(path)
        paths.append(path)
    out = tmp_path / "eval"
    result = _main("evaluate", f"--model={','.join(paths)}", f"--data_dir={data_dir}", "--ensemble",
                   "--protocols=center,dense,multi_crop", "--test_scale=32,48", "--mean=rgb", "--batch_size=4",
                   f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    import pandas as pd

    table = pd.read_csv(out / "errors.csv")
    # per model: 3 protocols x (2 scales + both) + dense+multi-crop = 10 rows; 2 models and the fusion
    assert len(table) == 30
    assert set(table["model"]) == {"vgg_a", "vgg_a (m6.keras)", "vgg_a + vgg_a (m6.keras)"}
    assert table["top-1 val. error (%)"].between(0, 100).all() and (table["images/s"] > 0).all()
    assert (table["top-5 val. error (%)"] <= table["top-1 val. error (%)"]).all()
    assert (out / "errors.md").read_text().count("\n") == 32

    model = keras.saving.load_model(paths[0])
    center = table[(table["model"] == "vgg_a") & (table["evaluation method"] == "centre crop")
                   & (table["test scale Q"] == "32")]
    crops = np.concatenate([_numpy_crops(_rescaled(im, 32), "center") for im in _images()])
    probs = model.predict(crops, verbose=0)
    assert center["top-1 val. error (%)"].item() == pytest.approx(tables.top_k_error(probs, _labels(), 1), abs=0.01)

    saved = export_saved_model(model, str(tmp_path / "sm"), "exported_run", image_size=SIZE, resize_size=40,
                               mean=MEAN_RGB)  # evaluate reads the mean kind and name from the export
    result = _main("evaluate", f"--model={saved}", f"--data_dir={data_dir}", "--test_scale=32",
                   f"--output_dir={tmp_path / 'eval_sm'}")
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.splitlines()  # what it does, before TensorFlow's seconds-long import
    assert printed[0] == f"Evaluating {saved} on the validation split (center)"
    assert printed[1] == "Loading TensorFlow ..." and printed[2].startswith("Loading TensorFlow: done in ")
    served = pd.read_csv(tmp_path / "eval_sm" / "errors.csv")
    assert served["model"].item() == "vgg_a"
    assert served["top-1 val. error (%)"].item() == center["top-1 val. error (%)"].item()
    refused = _main("evaluate", f"--model={saved}", f"--data_dir={data_dir}", "--protocols=dense")
    assert refused.returncode == 2 and "SavedModel with a fixed input size" in refused.stderr
