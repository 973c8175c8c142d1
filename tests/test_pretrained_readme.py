"""README "Start from pretrained weights": its commands pasted as a user would (in a folder holding files
under the README's names: a bvlc_alexnet.caffemodel written by the test with random weights, a mean
.binaryproto, synset_words.txt, data/imagenet, photo.jpg), then `figures` and `neighbors` on the same
imported run; the results checked against OpenCV's Caffe reader."""

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests import caffe_writer
from tests.test_caffe_import import framed_photos, opencv_probabilities
from tests.test_import_weights import imagenet_like_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def section_commands():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Start from pretrained weights", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.+?)\n```", section, flags=re.S).group(1)
    return block.splitlines(), section


def paste(line, cwd):
    """One README line, `python main.py` made this interpreter and this checkout's main.py."""
    assert line.startswith("python main.py ")
    argv = [sys.executable, os.path.join(ROOT, "main.py"), *line.split()[2:]]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
    return done.stdout


def test_fine_tuning_follows_the_import_commands():
    """The section's first block is the import commands; the fine-tuning subsection and its block come after."""
    lines, section = section_commands()
    head, fine_tuning = section.split("### Fine-tuning on your own classes", 1)
    assert "\n".join(lines) in head
    assert "--init_from=" in re.search(r"```\n(.+?)\n```", fine_tuning, flags=re.S).group(1)


def test_readme_commands_on_generated_files(tmp_path):
    lines, _ = section_commands()
    assert [line.split()[2] for line in lines] == ["import_weights", "evaluate", "export", "predict", "import_weights"]
    weights = caffe_writer.random_weights(fc8_scale=0.15)
    caffe_writer.caffemodel(str(tmp_path / "bvlc_alexnet.caffemodel"), weights)
    prototxt = caffe_writer.deploy_prototxt(str(tmp_path / "deploy.prototxt"), weights)
    mean_bgr = np.broadcast_to(np.array([104.0, 117.0, 123.0], np.float32)[:, None, None], (3, 256, 256))
    caffe_writer.mean_binaryproto(str(tmp_path / "ilsvrc_2012_mean.binaryproto"), mean_bgr)
    caffe_writer.synset_words(str(tmp_path / "synset_words.txt"))
    files, frames = framed_photos(str(tmp_path / "photos"))
    files, frames = files[:3], frames[:3]
    want = opencv_probabilities(prototxt, str(tmp_path / "bvlc_alexnet.caffemodel"), frames, mean_bgr)
    ranked = np.argsort(-want, axis=1)
    names = [f"class {i}, thing {i}" for i in range(1000)]
    # Labels: photo 0's most probable class, photo 1's least, photo 2's third: top-1 2/3 wrong, top-5 1/3.
    imagenet_like_data(str(tmp_path / "data" / "imagenet"), files, [ranked[0, 0], ranked[1, -1], ranked[2, 2]], names)
    Image.fromarray(frames[0]).save(tmp_path / "photo.jpg", quality=100)

    out = paste(lines[0], tmp_path)
    assert "mean image" in out and "LRN before pooling (bvlc_alexnet)" in out and "227px crops" in out
    out = paste(lines[1], tmp_path)
    assert "227px crops, Q=256, mean image" in out
    errors = tmp_path / "runs" / "bvlc_alexnet" / "evaluation" / "validation" / "errors.csv"
    row = list(csv.DictReader(open(errors, encoding="utf-8")))[0]
    assert float(row["top-1 val. error (%)"]) == pytest.approx(200 / 3, abs=0.01)
    assert float(row["top-5 val. error (%)"]) == pytest.approx(100 / 3, abs=0.01)
    paste(lines[2], tmp_path)
    out = paste(lines[3], tmp_path)
    import tensorflow as tf  # the JPEG decoded as `predict` decodes it (decoders differ by a grey level or two)

    decoded = tf.io.decode_image(open(tmp_path / "photo.jpg", "rb").read(), channels=3).numpy()[None]
    jpeg_want = opencv_probabilities(prototxt, str(tmp_path / "bvlc_alexnet.caffemodel"), decoded, mean_bgr)[0]
    top = int(np.argmax(jpeg_want))
    first = re.search(r"1\.\s+([0-9.]+)\s+(\d+)\s+(.+)", out)
    assert (int(first.group(2)), first.group(3)) == (top, names[top]), out
    assert float(first.group(1)) == pytest.approx(jpeg_want[top], abs=1e-4)
    # The other commands that take a run.
    paste("python main.py figures --model=runs/bvlc_alexnet --data_dir=data/imagenet --num_images=3 "
          "--output_dir=figures", tmp_path)
    assert (tmp_path / "figures" / "conv1.png").exists() and (tmp_path / "figures" / "top5.png").exists()
    paste("python main.py neighbors --model=runs/bvlc_alexnet --data_dir=data/imagenet --num_queries=2 --k=2 "
          "--output_dir=neighbors", tmp_path)
    assert (tmp_path / "neighbors" / "neighbors.png").exists()
