"""pipelines/stats.py against NumPy on the same decoded images: mean image (AlexNet §2), mean RGB
(VGG §2.1), RGB covariance and its eigen-decomposition (AlexNet §4.1)."""

import io
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.errors import UserError
from keras_alexnet.progress import ProgressLine
from pipelines import image_codec, prepare, records, stats
from pipelines.sources import load
from tests.image_fixtures import make_folder, read_split


def _decoded(data_dir):
    return [tf.io.decode_jpeg(r[records.ENCODED]).numpy() for r in read_split(data_dir, "train")]


def _numpy_rgb_stats(images):
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    make_folder(str(root / "in"), per_class=5, size=(30, 44))
    source = load.from_paths(str(root / "in"))
    out = str(root / "alexnet")
    prepare.prepare(source, prepare.PrepareConfig(data_dir=out, image_size=16, num_workers=1, validation_holdout=0,
                                                  num_shards={"train": 3}))
    return out


def test_stats_match_numpy(prepared):
    result = stats.run(prepared)
    images = _decoded(prepared)
    assert result["num_images"] == len(images) == 15
    np.testing.assert_allclose(result["mean_image"], np.mean(np.stack(images).astype(np.float64), axis=0), atol=1e-4)
    assert result["mean_image"].dtype == np.float32 and result["mean_image"].shape == (16, 16, 3)
    mean, cov = _numpy_rgb_stats(images)
    np.testing.assert_allclose(result["mean_rgb"], mean, rtol=1e-6)
    np.testing.assert_allclose(result["rgb_cov"], cov, rtol=1e-9, atol=1e-9)
    values, vectors = result["eigenvalues"], result["eigenvectors"]
    assert values.dtype == np.float64 and vectors.shape == (3, 3)
    assert values[0] >= values[1] >= values[2] >= 0
    np.testing.assert_allclose(cov @ vectors, vectors * values, atol=1e-6)  # column i pairs with value i
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov))[::-1], values, rtol=1e-9)


def test_load_stats_round_trip_and_missing_file(prepared, tmp_path):
    with pytest.raises(UserError, match=r"stats.npz: .*run `python main.py stats --data_dir="):
        stats.load_stats(str(tmp_path))
    saved = stats.run(prepared)
    loaded = stats.load_stats(prepared)
    assert set(records.STATS_KEYS) <= set(loaded)
    assert loaded["num_images"] == 15 and isinstance(loaded["num_images"], int)
    for key in ("mean_image", "mean_rgb", "rgb_cov", "eigenvalues", "eigenvectors"):
        np.testing.assert_array_equal(loaded[key], saved[key])
        assert loaded[key].dtype == saved[key].dtype


def test_off_a_terminal_main_py_stats_prints_its_progress_at_the_start_and_the_final_count(prepared):
    """stdout a pipe (a log file, a scheduler): the progress line at 0/15, then at the end with the count
    reached, then the result line."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, os.path.join(root, "main.py"), "stats", f"--data_dir={prepared}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    title = "stats: mean image, mean RGB and RGB covariance of the training images | "
    progress = [line for line in lines if line.startswith(title)]
    assert len(progress) == 2 and "\r" not in result.stdout, lines
    assert progress[0].startswith(title + " 0/15 images [>...................]   0% |"), lines
    assert progress[1].startswith(title + "15/15 images [====================] 100% |"), lines
    assert lines[-1].startswith(f"stats: {os.path.join(prepared, records.STATS_FILE)}: 15 images, mean RGB"), lines


def test_the_progress_line_counts_the_images_of_each_batch(prepared):
    """Off a terminal, a line every interval (here each batch comes an interval later) with the images
    counted so far, and the final count."""
    out = io.StringIO()
    clock = itertools.count(0.0, 16.0).__next__  # 16 s later at each reading: every line is due
    line = ProgressLine("stats", 15, stream=out, interactive=False, interval=15.0, clock=clock, redraw=None)
    stats.compute(prepared, batch_size=4, progress=line)
    counts = [text.split(" | ")[1].split(" images")[0].strip().split("/") for text in out.getvalue().splitlines()]
    assert {total for _, total in counts} == {"15"}
    done = [int(count) for count, _ in counts]  # batches of 4, 4, 4 and 3, in the order they come
    assert done[0] == 0 and done[-1] == 15 and len(done) == 5, done
    assert all(later - earlier in (3, 4) for earlier, later in zip(done, done[1:])), done


def test_max_images_subsamples(prepared):
    result = stats.compute(prepared, max_images=4)
    assert result["num_images"] == 4


def test_variable_sizes_give_alexnet_256_mean_image(tmp_path):
    """Policy "none": images keep their sizes; the mean image is at AlexNet's 256x256 (shorter side 256,
    central crop), the RGB moments over the stored pixels."""
    make_folder(str(tmp_path / "in"), classes=("a",), kinds=("rgb_jpeg", "cmyk_jpeg"), per_class=2, size=(30, 44))
    make_folder(str(tmp_path / "in"), classes=("b",), kinds=("png_as_jpeg", "grey_png"), per_class=2, size=(50, 40))
    out = str(tmp_path / "out")
    prepare.prepare(load.from_paths(str(tmp_path / "in")),
                    prepare.PrepareConfig(data_dir=out, image_policy="none", num_workers=1))
    result = stats.compute(out)
    images = _decoded(out)
    assert {im.shape for im in images} == {(30, 44, 3), (50, 40, 3)}
    expected = np.mean([image_codec.apply_policy(im, "alexnet", 256).astype(np.float64) for im in images], axis=0)
    assert result["mean_image"].shape == (256, 256, 3)
    np.testing.assert_allclose(result["mean_image"], expected, atol=1e-3)
    mean, cov = _numpy_rgb_stats(images)
    np.testing.assert_allclose(result["mean_rgb"], mean, rtol=1e-6)
    np.testing.assert_allclose(result["rgb_cov"], cov, rtol=1e-9)


def test_no_shards_is_one_line_error(tmp_path):
    with pytest.raises(UserError, match="no train shards"):
        stats.compute(str(tmp_path))


def test_finish_against_numpy_on_random_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (1000, 3)) * np.array([1, 0.5, 0.25]) // 1
    pixels = pixels.astype(np.int64)
    shifted = pixels - 128
    result = stats.finish(np.zeros((1, 1, 3)), shifted.sum(0), shifted.T @ shifted, 1, len(pixels))
    np.testing.assert_allclose(result["rgb_cov"], np.cov(pixels.astype(float), rowvar=False, bias=True), rtol=1e-12)
    np.testing.assert_allclose(result["mean_rgb"], pixels.mean(0), rtol=1e-6)


def test_damaged_shards_and_undecodable_records_are_skipped_named_and_counted(tmp_path):
    """As training reads them: 3 shards of 6; a CRC flip at record 2 (4 lost), a truncation at record 4
    (2 lost), one undecodable image. The statistics are those of the 7 images left (NumPy)."""
    import os
    import subprocess
    import sys

    from test_damaged_records import ROOT, flip_byte, truncate_in
    from test_input_pipeline import _image, _jpeg, write_shards

    images = [[_image(seed=10 * s + i) for i in range(6)] for s in range(3)]
    shards = [[(_jpeg(image), i % 5) for i, image in enumerate(shard)] for shard in images]
    shards[2][3] = (b"\xff\xd8 not a jpeg", 1)
    data_dir = write_shards(str(tmp_path / "data"), shards)
    names = [os.path.join(data_dir, records.shard_name("train", i, 3)) for i in range(3)]
    flipped, cut = flip_byte(names[0], 2), truncate_in(names[1], 4)
    kept = images[0][:2] + images[1][:4] + images[2][:3] + images[2][4:]
    decoded = [tf.io.decode_jpeg(_jpeg(image)).numpy() for image in kept]

    result = stats.compute(data_dir)
    assert result["num_images"] == 11 and result["lost_records"] == 6 and result["dropped_records"] == 1
    np.testing.assert_allclose(result["mean_image"], np.mean(np.stack(decoded).astype(np.float64), axis=0), atol=1e-4)
    mean, cov = _numpy_rgb_stats(decoded)
    np.testing.assert_allclose(result["mean_rgb"], mean, rtol=1e-6)
    np.testing.assert_allclose(result["rgb_cov"], cov, rtol=1e-9, atol=1e-9)

    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    cli = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "stats", f"--data_dir={data_dir}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    skipped = [line for line in cli.stderr.splitlines() if "from there skipped" in line]
    assert skipped == [f"{names[0]}: corrupted record at byte {flipped} (record 2); 4 record(s) from there skipped",
                       f"{names[1]}: truncated record at byte {cut} (record 4); 2 record(s) from there skipped"]
    assert f"{names[2]}: record 3: image does not decode (or the record does not parse), record dropped" \
        in cli.stderr.splitlines()
    assert cli.stdout.splitlines()[-2:] == [
        "stats: 6 record(s) lost in damaged shard(s) (named above; main.py verify lists them)",
        "stats: 1 record(s) dropped: their image could not be decoded (main.py verify names them)"], cli.stdout
    assert f"{data_dir}/stats.npz: 11 images" in cli.stdout
