"""Training through the tf.data service (`main.py data_service`, `train --data_service`), with real
processes on localhost: the dispatcher and two workers as `main.py data_service ...`, the trainer as
`main.py train`. Each test bounds its processes in time. The data: real Fashion-MNIST images (Debian's
package, installed by setup.sh) in several training shards, the unit the dispatcher hands out."""

import contextlib
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from test_damaged_records import truncate_in
from test_input_pipeline import _config, _image, _jpeg, write_shards, write_stats
from test_train_cli import ROOT, make_fashion_dir

TRAIN_SHARDS = 8
SMALL = ["--width=0.125", "--image_size=64", "--resize_size=72", "--init=glorot", "--batch_size=64",
         "--pca_jitter_std=0", "--ten_crop_every=0", "--noexport", "--noprogress", "--lr_schedule=constant",
         "--learning_rate=0.03"]


def env():
    full = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    full.pop("TF_CONFIG", None)
    return full


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def split_train_shard(data_dir, shards=TRAIN_SHARDS):
    """The training split of `make_fashion_dir` rewritten as `shards` shards (dataset.json updated)."""
    import tensorflow as tf

    from pipelines import records

    single = os.path.join(data_dir, records.shard_name("train", 0, 1))
    serialized = list(tf.data.TFRecordDataset(single).as_numpy_iterator())
    os.remove(single)
    counts = []
    for index in range(shards):
        part = serialized[index::shards]
        with tf.io.TFRecordWriter(os.path.join(data_dir, records.shard_name("train", index, shards))) as writer:
            for record in part:
                writer.write(record)
        counts.append(len(part))
    metadata = records.read_metadata(data_dir)
    metadata.splits["train"] = records.SplitInfo(num_examples=len(serialized), num_shards=shards,
                                                 shard_examples=counts)
    records.write_metadata(data_dir, metadata)
    return data_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("service") / "data")
    return split_train_shard(make_fashion_dir(folder, counts={"train": 1536, "validation": 64, "test": 64}))


class Processes:
    """Started `main.py` processes, each killed at the end of the test if still running."""

    def __init__(self, folder):
        self.folder = folder
        self.started = []

    def start(self, name, *args, hide=None, obey_permissions=False):
        """`main.py args`; with `hide` (a folder), in a mount namespace where an empty folder covers it; with
        `obey_permissions`, without the capabilities that let root read any file (so a mode denies it)."""
        log = open(os.path.join(self.folder, f"{name}.log"), "w")
        command = [sys.executable, os.path.join(ROOT, "main.py"), *args]
        if hide:
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       'mount -t tmpfs none "$0" && exec "$@"', str(hide)] + command
        if obey_permissions:
            dropped = "-dac_override,-dac_read_search"
            command = ["setpriv", "--bounding-set", dropped, "--inh-caps", dropped] + command
        process = subprocess.Popen(command, cwd=self.folder, env=env(), stdout=log, stderr=subprocess.STDOUT,
                                   text=True)
        process.log_path = log.name
        self.started.append((process, log))
        return process

    def dispatcher(self, port, work_dir, name="dispatcher"):
        process = self.start(name, "data_service", "dispatcher", f"--port={port}", f"--work_dir={work_dir}")
        self.wait_for(process, "listening on port")
        return process

    def service(self, port, work_dir, workers=2):
        """A dispatcher and `workers` workers, started together (workers wait for their dispatcher)."""
        dispatcher = self.start("dispatcher", "data_service", "dispatcher", f"--port={port}", f"--work_dir={work_dir}")
        started = [self.start(f"worker{index + 1}", "data_service", "worker", f"--dispatcher=localhost:{port}",
                              "--host=localhost") for index in range(workers)]
        self.wait_for(dispatcher, "listening on port")
        for worker in started:
            self.wait_for(worker, "worker listening at localhost:")
        return dispatcher, started

    @staticmethod
    def output(process):
        with open(process.log_path) as f:
            return f.read()

    def wait_for(self, process, text, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output(process):
                return
            assert process.poll() is None, self.output(process)
            time.sleep(0.2)
        raise AssertionError(f"no '{text}' within {timeout} s: {self.output(process)}")

    def close(self):
        for process, log in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            log.close()


@pytest.fixture
def processes(tmp_path):
    started = Processes(str(tmp_path))
    yield started
    started.close()


def train(tmp_path, data_dir, args, timeout):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "train", f"--data_dir={data_dir}",
                           *SMALL, *args], cwd=str(tmp_path), env=env(), capture_output=True, text=True,
                          timeout=timeout)


# -- flags: one line, before any work --------------------------------------------------------------

def main_py(*args, timeout=60):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], env=env(), capture_output=True,
                          text=True, timeout=timeout)


def test_a_port_in_use_is_refused_not_shared():
    """gRPC would share the port with the process listening there (SO_REUSEPORT)."""
    with socket.socket() as listening:
        listening.bind(("", 0))
        listening.listen()
        port = listening.getsockname()[1]
        for args in (["dispatcher", f"--port={port}", "--work_dir=wd"],
                     ["worker", "--dispatcher=localhost:5050", f"--port={port}"]):
            result = main_py("data_service", *args)
            assert result.returncode == 2 and result.stderr.startswith(
                f"main.py data_service: error: --port={port}: in use on this machine ("), result.stderr
            assert len(result.stderr.strip().splitlines()) == 1


def test_train_without_a_reachable_dispatcher_is_one_line_within_seconds(tmp_path, data_dir):
    port = free_port()  # nothing listens there
    start = time.time()
    result = main_py("train", f"--data_dir={data_dir}", f"--data_service=grpc://127.0.0.1:{port}",
                     f"--runs_dir={tmp_path}")
    assert time.time() - start < 30  # the check's timeout is 5 s; no hour-long retries
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"main.py train: error: --data_service=grpc://127.0.0.1:{port}: no tf.data service dispatcher "
                     f"answers there within 5 s (start one: main.py data_service dispatcher --port={port} "
                     "--work_dir=DIR)"], lines
    bad = main_py("train", f"--data_dir={data_dir}", "--data_service=localhost:5050", f"--runs_dir={tmp_path}")
    assert bad.returncode == 2 and "--data_service=localhost:5050: expected grpc://HOST:PORT" in bad.stderr
    several = main_py("train", f"--data_dir={data_dir}", f"--data_service=grpc://127.0.0.1:{port}",
                      "--strategy=multi_worker", f"--runs_dir={tmp_path}")
    assert several.returncode == 2 and several.stderr.strip() == (
        "main.py train: error: --data_service with --strategy=multi_worker: each worker would read the whole "
        "epoch; use one trainer (default, mirrored or towers)"), several.stderr


def test_the_library_call_checks_the_dispatcher_too(tmp_path, data_dir):
    from keras_alexnet.errors import FlagError
    from keras_alexnet.training.config import config_from_values
    from keras_alexnet.training.run import train

    address = f"grpc://127.0.0.1:{free_port()}"
    config = config_from_values({"data_dir": data_dir, "width": 0.125, "image_size": 64, "resize_size": 72,
                                 "batch_size": 64, "runs_dir": str(tmp_path), "data_service": address})
    with pytest.raises(FlagError, match=f"--data_service={address}: no tf.data service dispatcher answers there"):
        train(config, printer=lambda message: None)
    assert not glob.glob(str(tmp_path / "*" / "run.json"))


# -- the pipeline through the service: coverage and counts against the local pipeline ----------------

@contextlib.contextmanager
def local_service(work_dir, workers=2):
    """A dispatcher and workers in this process (`pipelines.data_service`); yields the address."""
    from pipelines import data_service

    dispatcher = data_service.start_dispatcher(free_port(), str(work_dir))
    servers = [data_service.start_worker(dispatcher.target.split("://")[1], host="localhost")[0]
               for _ in range(workers)]
    try:
        yield dispatcher.target
    finally:
        for server in servers:
            server.stop()
        dispatcher.stop()


def test_one_pass_through_two_workers_covers_every_record_once_and_keeps_the_counts(tmp_path, capfd):
    """Six shards, one with an undecodable image, one truncated: through the service each record is
    read once per pass (the same centre crops as the local pipeline's), and the trainer's counters get
    the local pipeline's dropped and lost counts."""
    from pipelines import data_service, input_pipeline, record_parser

    shards = [[(_jpeg(_image(seed=10 * s + i)), (s + i) % 5) for i in range(7)] for s in range(6)]
    shards[2][3] = (b"\xff\xd8 not a jpeg", 1)
    data_dir = write_shards(str(tmp_path / "data"), shards)
    write_stats(data_dir)
    truncate_in(os.path.join(data_dir, "train-00004-of-00006"), 5)  # records 5 and 6 lost
    config = _config(data_dir, drop_remainder=False, random_crop=False, flip=False, pca_jitter_std=0.0, seed=3)

    local = input_pipeline.build_train_dataset(config, crops=True)
    expected = sorted(int(image.sum()) for crops, _ in local for image in crops["image"].numpy())
    expected_counts = local.drop_counter.take(), local.lost_counter.take()
    assert expected_counts == (1, 2) and len(expected) == 42 - 3

    dropped, lost = record_parser.DropCounter(), record_parser.DropCounter("lost_records")
    with local_service(tmp_path / "work") as address:
        dataset = data_service.distributed_train_dataset(config, address, dropped, lost)
        got = [int(image.sum()) for crops, _ in dataset.repeat(2) for image in crops["image"].numpy()]
    assert sorted(got[:len(expected)]) == expected and sorted(got[len(expected):]) == expected  # pass by pass
    assert (dropped.take(), lost.take()) == expected_counts  # the second pass not counted again
    assert "truncated record at byte" in capfd.readouterr().err


def test_a_bad_label_read_by_a_worker_is_the_one_line_record_error(tmp_path):
    from pipelines import data_service, record_parser

    shards = [[(_jpeg(_image(seed=10 * s + i)), (s + i) % 5) for i in range(7)] for s in range(3)]
    shards[1][2] = (_jpeg(_image(seed=99)), 7)
    data_dir = write_shards(str(tmp_path / "data"), shards)
    write_stats(data_dir)
    with local_service(tmp_path / "work") as address:
        dataset = data_service.distributed_train_dataset(_config(data_dir, drop_remainder=False), address,
                                                         record_parser.DropCounter(),
                                                         record_parser.DropCounter("lost_records"))
        with pytest.raises(record_parser.UserError) as raised, record_parser.user_errors():
            for _ in dataset:
                pass
    assert str(raised.value) == f"{os.path.join(data_dir, 'train-00001-of-00003')}: record 2: label 7 outside [0, 5)"


# -- faults, with real processes -------------------------------------------------------------------

def start_training(processes, data_dir, port, name, args):
    return processes.start(name, "train", f"--data_dir={data_dir}", *SMALL, f"--run_name={name}",
                           f"--data_service=grpc://localhost:{port}", *args)


def wait_for_step_checkpoint(processes, trainer, run_dir, timeout=90):
    """Waits until the run has saved its first step checkpoint (`--checkpoint_every_steps`)."""
    deadline = time.time() + timeout
    while not glob.glob(str(run_dir / "checkpoints" / "ckpt-*.index")):
        assert trainer.poll() is None and time.time() < deadline, processes.output(trainer)
        time.sleep(0.2)


def finished(processes, trainer, timeout):
    try:
        trainer.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"training hung: {processes.output(trainer)}") from None
    return processes.output(trainer)


def test_a_killed_worker_leaves_the_epoch_to_the_other(tmp_path, processes, data_dir):
    port = free_port()
    _, (doomed, _) = processes.service(port, tmp_path / "work")
    trainer = start_training(processes, data_dir, port, "killed_worker", ["--epochs=1", "--steps_per_epoch=12",
                                                                          "--checkpoint_every_steps=4"])
    wait_for_step_checkpoint(processes, trainer, tmp_path / "runs" / "killed_worker")  # mid-epoch 1
    doomed.send_signal(signal.SIGKILL)
    out = finished(processes, trainer, timeout=90)
    assert trainer.returncode == 0 and "epoch 1/1" in out and "Done in" in out, out
    assert "data order not bitwise reproducible" in out


def test_a_restarted_dispatcher_takes_the_job_up_again(tmp_path, processes, data_dir):
    port = free_port()
    dispatcher, _ = processes.service(port, tmp_path / "work")
    trainer = start_training(processes, data_dir, port, "restarted", ["--epochs=1", "--steps_per_epoch=12",
                                                                      "--checkpoint_every_steps=4"])
    wait_for_step_checkpoint(processes, trainer, tmp_path / "runs" / "restarted")  # mid-epoch 1
    dispatcher.send_signal(signal.SIGKILL)
    dispatcher.wait(timeout=30)
    processes.dispatcher(port, tmp_path / "work", name="dispatcher2")
    out = finished(processes, trainer, timeout=120)
    assert trainer.returncode == 0 and "epoch 1/1" in out and "Done in" in out, out
    with open(tmp_path / "runs" / "restarted" / "run.json") as f:
        assert json.load(f)["config"]["data_service"] == f"grpc://localhost:{port}"


def test_an_interrupted_run_resumes_through_the_service(tmp_path, processes, data_dir):
    """SIGTERM mid-epoch saves a checkpoint; the same command resumes, the epoch's remaining steps from
    a new pass (the service's batches are not replayed)."""
    port = free_port()
    processes.service(port, tmp_path / "work", workers=1)
    args = ["--epochs=1", "--steps_per_epoch=12", "--checkpoint_every_steps=4"]
    trainer = start_training(processes, data_dir, port, "resumed", args)
    wait_for_step_checkpoint(processes, trainer, tmp_path / "runs" / "resumed")
    trainer.send_signal(signal.SIGTERM)
    out = finished(processes, trainer, timeout=60)
    assert trainer.returncode == 130 and "resume with:" in out, out
    again = start_training(processes, data_dir, port, "resumed", args)
    out = finished(processes, again, timeout=90)
    assert again.returncode == 0 and "Resuming from" in out and "epoch 1/1" in out and "Done in" in out, out


def private_copy(tmp_path, data_dir):
    """A copy of the data under tmp_path/private/data (a folder the tests may hide or lock); its parent."""
    import shutil

    private = tmp_path / "private"
    shutil.copytree(data_dir, private / "data")
    return private


def train_through_one_worker(tmp_path, processes, private, **worker_options):
    """One epoch on private/data through a dispatcher and one worker started with `worker_options`
    (`processes.start`'s): (the trainer's process, its output, the worker's process)."""
    port = free_port()
    worker = processes.start("worker", "data_service", "worker", f"--dispatcher=localhost:{port}", "--host=localhost",
                             **worker_options)
    processes.dispatcher(port, tmp_path / "work")
    processes.wait_for(worker, "worker listening at localhost:")
    trainer = start_training(processes, str(private / "data"), port, "unreadable", ["--epochs=1"])
    return trainer, finished(processes, trainer, timeout=120), worker


def test_a_worker_that_cannot_read_the_data_fails_the_trainer_in_one_line(tmp_path, processes, data_dir):
    """The worker runs where the trainer's data folder is not there (an empty folder mounted over it in
    the worker's own mount namespace), as on a machine without the shared file system."""
    private = private_copy(tmp_path, data_dir)
    trainer, out, _ = train_through_one_worker(tmp_path, processes, private, hide=private)
    lines = [line for line in out.splitlines() if line.startswith("main.py train: error:")]
    assert trainer.returncode == 1 and len(lines) == 1, out
    assert lines[0].startswith(f"main.py train: error: {private / 'data' / 'train-'}"), lines
    assert lines[0].endswith(": not found by a tf.data service worker: workers read the data at the paths the "
                             "trainer reads (a shared file system, see docs/data_service.md)"), lines
    assert "Traceback" not in out


def test_a_worker_without_permission_to_read_the_shards_fails_the_trainer_in_one_line(tmp_path, processes,
                                                                                      data_dir):
    """The shards are there but their mode denies reading, to the worker only: it runs without the
    capabilities that let root read any file (as a worker running under another user would be)."""
    private = private_copy(tmp_path, data_dir)
    shards = sorted((private / "data").glob("train-*"))
    assert shards
    for shard in shards:
        shard.chmod(0)
    trainer, out, worker = train_through_one_worker(tmp_path, processes, private, obey_permissions=True)
    lines = [line for line in out.splitlines() if line.startswith("main.py train: error:")]
    assert trainer.returncode == 1 and len(lines) == 1, out
    assert re.fullmatch(re.escape(f"main.py train: error: {private / 'data'}/") + r"train-[^:]+" + re.escape(
        ": found but not readable by a tf.data service worker (permission denied?): workers read the data at the "
        "paths the trainer reads (a shared file system, see docs/data_service.md), with permission to read them"),
        lines[0]), lines
    assert "Traceback" not in out
    assert worker.poll() is None  # the worker goes on serving
