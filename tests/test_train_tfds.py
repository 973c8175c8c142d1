"""`main.py train --tfds=NAME`: training from a TFDS dataset's prepared TFRecords, end to end.

The dataset is a tiny TFDS builder prepared offline into a temporary `--tfds_data_dir`; the training
process has no copy of the builder class and reads it as TFDS does for any prepared dataset.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from test_tfds_source import KaTinyImages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds_train"))
    KaTinyImages(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    stats = os.path.join(data_dir, "stats.npz")
    np.savez(stats, mean_image=np.full((72, 72, 3), 120, np.float32), mean_rgb=np.full(3, 120, np.float32),
             eigenvalues=np.array([3.0, 2.0, 1.0]), eigenvectors=np.eye(3))
    return data_dir, stats


def train(*flags):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "train", *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_train_from_tfds_exports_tfds_class_names(prepared, tmp_path):
    data_dir, stats = prepared
    result = train("--tfds=ka_tiny_images", f"--tfds_data_dir={data_dir}", f"--stats_path={stats}",
                   "--architecture=alexnet", "--width=0.0625", "--image_size=64", "--resize_size=72",
                   "--epochs=1", "--batch_size=2", "--ten_crop_every=0", "--test_split=validation",
                   f"--runs_dir={tmp_path / 'runs'}", f"--export_dir={tmp_path / 'exports'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "alexnet on tfds:ka_tiny_images: 6 classes, 6 training images" in result.stdout
    export = tmp_path / "exports" / "alexnet" / "1"
    assert (export / "saved_model.pb").exists()
    assert "SavedModel:" in result.stdout and "evaluate:" not in result.stdout


def test_tfds_and_data_dir_together_are_refused(prepared):
    data_dir, _ = prepared
    result = train("--tfds=ka_tiny_images", f"--data_dir={data_dir}")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("give one data source")


def test_unprepared_tfds_dataset_is_one_line(tmp_path):
    result = train("--tfds=ka_tiny_images", f"--tfds_data_dir={tmp_path}", "--mean=none",
                   "--pca_jitter_std=0")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--tfds=ka_tiny_images" in lines[0], result.stderr[-2000:]
