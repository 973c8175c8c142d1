"""The papers' figures: conv1 grid (AlexNet Fig. 3), top-5 panels and fc7 neighbours (Fig. 4)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_alexnet import figures
from pipelines import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES, SIZE = 4, 32


def test_conv1_grid_is_the_min_max_scaled_kernels():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(5, 11, name="conv1")(inputs)
    model = keras.Model(inputs, x)
    figure = figures.conv1_grid(model, scale=2, min_width=0)
    grid = figure[-2 * (2 * 12 - 1):]  # under the title strip: 2x3 kernels, each pixel 2x2
    assert figure.dtype == np.uint8 and grid.shape == (2 * (2 * 12 - 1), 2 * (3 * 12 - 1), 3)
    kernel = model.get_layer("conv1").kernel.numpy()[..., 1]  # second kernel: row 0, column 1
    expected = (kernel - kernel.min()) / (kernel.max() - kernel.min())
    np.testing.assert_allclose(grid[0:22:2, 24:46:2] / 255.0, expected, atol=1 / 255 + 1e-6)
    assert figures.conv1_grid(model).shape[1] >= 600  # enlarged to be read in TensorBoard's card


def test_two_tower_conv1_grid_from_alexnet():
    from keras_alexnet.registry import build_model

    model = build_model("alexnet", num_classes=CLASSES, input_shape=(67, 67, 3), width=0.125)
    grid = figures.conv1_grid(model, scale=1, min_width=0)
    # two towers of 6 kernels 11x11: grids of 3x2 kernels side by side with a 3-pixel gap
    assert grid.shape[1] == 2 * (3 * 12 - 1) + 3
    assert (grid[-(2 * 12 - 1):, 35:38] == 255).all()


def test_png_round_trip(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = figures.write_png(str(tmp_path / "x.png"), image)
    np.testing.assert_array_equal(tf.io.decode_png(tf.io.read_file(path)).numpy(), image)


def test_bars_mark_the_correct_label_red():
    out = figures.bars([0.5, 0.25, 0.125, 0.0625, 0.0], [3, 1, 0, 2, 4], true_label=1, width=64,
                       bar_height=4, gap=2)
    assert out.shape == (30, 64, 3)
    for rank, (length, colour) in enumerate([(32, figures.BLUE), (16, figures.RED), (8, figures.BLUE),
                                             (4, figures.BLUE), (0, None)]):
        row = out[rank * 6 + 2]
        coloured = np.all(row == (colour or (0, 0, 0)), axis=1).sum() if colour else 0
        assert coloured == length
        assert (row[length:] == figures.TRACK).all()
    missing = figures.bars([0.9, 0.1], [0, 1], true_label=3, width=10)
    assert not np.all(missing == figures.RED, axis=-1).any()  # correct label not in the top 5: no red


def test_top5_panels_and_markdown():
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (40, 50, 3)).astype(np.float32) for _ in range(5)]
    classes = np.array([[0, 1, 2, 3, 4]] * 5)
    probs = np.array([[0.6, 0.2, 0.1, 0.05, 0.05]] * 5)
    names = [f"c{i}" for i in range(10)]
    panel = figures.top5_panels(images, classes, probs, [0, 1, 2, 3, 9], size=20, columns=4, class_names=names)
    caption = figures.top5_caption(probs[0], classes[0], 0, names, 20)
    assert panel.shape == (2 * (20 + caption.shape[0]) + 8, 4 * 20 + 3 * 8, 3)
    np.testing.assert_array_equal(panel[:20, :20], figures.tile(images[0], 20))
    np.testing.assert_array_equal(panel[20:20 + caption.shape[0], :20], caption)
    md = figures.top5_markdown(classes, probs, [0, 1, 2, 3, 9], names).splitlines()
    assert md[2] == "| 1, 1 | correct | c0 | **c0** (0.600); c1 (0.200); c2 (0.100); c3 (0.050); c4 (0.050) |"
    assert [line.split(" | ")[1] for line in md[3:6]] == ["wrong, in top 5"] * 3
    assert md[6].startswith("| 2, 1 | wrong, not in top 5 | c9 | c0 (0.600)") and "**" not in md[6]


def test_panels_alternate_successes_and_failures():
    assert figures.successes_and_failures([True, True, False, True, False, False], 4) == [0, 2, 1, 4]
    assert figures.successes_and_failures([False, False, True], 3) == [2, 0, 1]  # a success first
    assert figures.successes_and_failures([True, True, True, False], 4) == [0, 3, 1, 2]  # failures ran out
    assert figures.successes_and_failures([True] * 3, 5) == [0, 1, 2]  # fewer images than panels
    assert figures.top5_verdict([4, 2, 1, 0, 3], 4) == "correct"
    assert figures.top5_verdict([4, 2, 1, 0, 3], 0) == "wrong, in top 5"
    assert figures.top5_verdict([4, 2, 1, 0, 3], 7) == "wrong, not in top 5"


def test_nearest_matches_brute_force_in_chunks():
    rng = np.random.default_rng(3)
    queries, database = rng.normal(size=(4, 16)), rng.normal(size=(50, 16))
    search = figures.Nearest(queries, k=6)
    for start in range(0, 50, 7):  # chunks smaller than k and uneven, each row with its item (its index x 10)
        search.add(database[start:start + 7], [10 * i for i in range(start, min(start + 7, 50))])
    distances = np.linalg.norm(queries[:, None] - database[None], axis=-1)
    expected = np.argsort(distances, axis=1)[:, :6]
    np.testing.assert_array_equal(search.indices, expected)
    np.testing.assert_allclose(search.distances, np.take_along_axis(distances, expected, 1), rtol=1e-9)
    assert search.seen == 50
    assert [[search.item(i) for i in row] for row in search.indices] == (10 * expected).tolist()
    assert len(search._items) == len(set(expected.ravel()))  # only the nearest rows' items are kept


def test_nearest_compares_feature_maps_as_flattened_vectors():
    """A conv layer's maps ([N, h, w, c], `neighbors --layer=conv1`): the Euclidean distance of the whole
    tensors, against NumPy over every element."""
    rng = np.random.default_rng(6)
    queries, database = rng.normal(size=(3, 5, 5, 4)), rng.normal(size=(20, 5, 5, 4))
    search = figures.Nearest(queries, k=4)
    for start in range(0, 20, 6):
        search.add(database[start:start + 6])
    distances = np.sqrt(((queries[:, None] - database[None]) ** 2).sum(axis=(2, 3, 4)))
    expected = np.argsort(distances, axis=1)[:, :4]
    np.testing.assert_array_equal(search.indices, expected)
    np.testing.assert_allclose(search.distances, np.take_along_axis(distances, expected, 1), rtol=1e-9)


def test_fc7_model_and_neighbor_grid():
    from keras_alexnet.registry import build_model

    model = build_model("alexnet", num_classes=CLASSES, input_shape=(67, 67, 3), width=0.125)
    features = figures.fc7_model(model)
    x = np.random.default_rng(4).normal(0, 50, (2, 67, 67, 3)).astype(np.float32)
    reference = keras.Model(model.inputs, model.get_layer("fc7").output)(x).numpy()
    np.testing.assert_allclose(features(x).numpy(), reference, rtol=1e-6)
    assert features.output.shape[-1] == model.get_layer("fc7").units

    queries = [np.full((30, 30, 3), 10.0 * i) for i in range(2)]
    found = [[np.full((30, 40, 3), 100.0 + j) for j in range(3)] for _ in range(2)]
    grid = figures.neighbor_grid(queries, found, size=16)
    header = figures.caption_size(16) + 5  # "query" and the ranks over the columns
    assert grid.shape == (header + 2 + 2 * 16 + 2, 16 + 2 + 4 + 3 * (16 + 2), 3)
    top = header + 2
    assert (grid[top + 18:top + 34, :16] == 10).all()  # second row starts with its query
    assert (grid[top:top + 16, 24:40] == 100).all() and (grid[top:top + 16, 42:58] == 101).all()  # in order
    assert (grid[top:top + 16, 19:21] == figures.BLUE).all()  # the rule after the query column


def _write_split(folder, split, images, labels):
    path = os.path.join(folder, records.shard_name(split, 0, 1))
    with tf.io.TFRecordWriter(path) as writer:
        for image, label in zip(images, labels):
            feature = {
                records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(image).numpy()])),
                records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A query set whose images are copies of known training images, and a tiny VGG checkpoint."""
    from keras_alexnet.registry import build_model

    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(5)
    train = [rng.integers(0, 256, (36, 40, 3), dtype=np.uint8) for _ in range(10)]
    _write_split(str(folder), "train", train, [i % CLASSES for i in range(10)])
    _write_split(str(folder), "validation", [train[7], train[2]], [7 % CLASSES, 2 % CLASSES])
    classes = [records.ClassInfo(i, f"n{i}", f"thing {i}") for i in range(CLASSES)]
    records.write_metadata(str(folder), records.DatasetInfo(
        classes=classes, splits={"train": records.SplitInfo(10, 1), "validation": records.SplitInfo(2, 1)}))
    np.savez(folder / records.STATS_FILE, mean_rgb=np.array([120.0, 120.0, 120.0], np.float32))
    keras.utils.set_random_seed(6)
    model = build_model("vgg_a", num_classes=CLASSES, input_shape=(SIZE, SIZE, 3), width=0.125)
    model.save(folder / "model.keras")
    return folder


def _main(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def test_neighbors_command_finds_the_same_image_first(tiny_run, tmp_path):
    result = _main("neighbors", f"--model={tiny_run / 'model.keras'}", f"--data_dir={tiny_run}",
                   "--num_queries=2", "--k=3", "--test_scale=36", "--mean=rgb", "--batch_size=4", "--tile=16",
                   f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.splitlines()
    model = tiny_run / "model.keras"
    assert printed[0] == f"Nearest train images to 2 validation images by fc7 distance, model {model}"
    assert printed[1] == "Loading TensorFlow ..." and printed[2].startswith("Loading TensorFlow: done in ")
    # One pass over the training split (the line counting it), then the figure is written.
    assert printed[-3].startswith("fc7 features of train |  0/10 images")  # off a terminal: start and end
    assert printed[-2].startswith("fc7 features of train | 10/10 images") and printed[-1].startswith("wrote ")
    grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "neighbors.png"))).numpy()
    row = 16 + 2 * (figures.caption_size(16) + 3) + 2  # each image, its class name and (neighbours) its distance
    body = figures.caption_size(16) + 5 + 2 + 2 * row + 2  # the header, then two rows
    assert grid.shape[1] == 16 + 2 + 4 + 3 * 18 and grid.shape[0] > body
    title = grid[:grid.shape[0] - body]  # the layer and the splits, over the grid
    assert (title.min(axis=-1) < 100).sum() > 50
    first = grid.shape[0] - 2 * row - 2
    np.testing.assert_array_equal(grid[first:first + 16, :16], grid[first:first + 16, 24:40])  # nearest: its copy
    rows = (tmp_path / "neighbors.md").read_text().splitlines()[-2:]
    assert rows[0].startswith("| 1 | thing 3 | thing 3 (0.00)")
    assert rows[1].startswith("| 2 | thing 2 | thing 2 (0.00)")


def test_figures_command_writes_pngs_markdown_and_tensorboard(tiny_run, tmp_path):
    result = _main("figures", f"--model={tiny_run / 'model.keras'}", f"--data_dir={tiny_run}", "--split=train",
                   "--num_images=4", "--test_scale=36", "--mean=rgb", "--tile=24", "--batch_size=3",
                   f"--output_dir={tmp_path}", f"--logdir={tmp_path / 'tb'}")
    assert result.returncode == 0, result.stderr[-3000:]
    conv1 = tf.io.decode_png(tf.io.read_file(str(tmp_path / "conv1.png"))).numpy()
    assert conv1.shape[1] >= 600  # 8 kernels 3x3 (3x3 grid) enlarged for reading
    top5 = tf.io.decode_png(tf.io.read_file(str(tmp_path / "top5.png"))).numpy()
    assert top5.shape[1] == 4 * 24 + 3 * 8 and top5.shape[0] > 24 + 4 * 10  # four panels, captions under them
    md = (tmp_path / "top5.md").read_text()
    assert md.startswith("# Top-5 labels of train images")  # the split used
    # Successes and failures alternate, each named as such: a panel is "correct" when its first label is.
    rows = [line.split(" | ") for line in md.splitlines()[4:]]
    verdicts = [row[1] for row in rows]
    assert verdicts[0] == "correct" and verdicts[1].startswith("wrong") and len(rows) == 4, md
    for row in rows:
        assert (row[1] == "correct") == row[3].startswith(f"**{row[2]}**"), row
        assert row[2].startswith("thing ")
    events = [f for f in os.listdir(tmp_path / "tb") if f.startswith("events.out")]
    assert events
