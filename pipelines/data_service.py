"""The training input pipeline on tf.data service workers (TensorFlow's own dispatcher and workers).

AlexNet is input-bound on GPUs (AlexNet §2, §4.1: every training image is read, decoded, cropped,
flipped and colour-shifted anew each epoch); when one host's cores cannot keep up, TensorFlow's
answer is the tf.data service: a dispatcher (`start_dispatcher`) and workers (`start_worker`) on
other machines run the training pipeline, and the trainer only receives its uint8 crop batches.

What runs where:
- on the workers: `input_pipeline.build_worker_train_dataset` (read, decode, crop, flip and PCA draws,
  batching in uint8, the label checks); a damaged shard or an undecodable image is named on the
  worker's stderr, and each batch carries its dropped and lost record counts as a tensor;
- in the trainer (`distributed_train_dataset`): the counts added into the run's `DropCounter`s (a
  dataset sent to the service cannot capture variables, so they travel with the batches), the
  remainder batches dropped, the float work (`input_pipeline.train_batch_finisher`, in the training
  step on the device), and everything else: validation and 10-crop evaluation read their data
  locally, as without the service.

Processing mode: `distributed_epoch` (dynamic sharding). The dispatcher hands the epoch's shard files
to the workers one at a time as they ask, so each shard is read by one worker once per epoch, fast
workers take more, and workers may join or leave: a killed worker's unfinished shards are skipped for
that epoch (at most once, never twice), the other workers go on, and the trainer fills the epoch's
remaining steps from the next pass as it does when steps outrun the records. File-level static
sharding (`ShardingPolicy.FILE`) would need every worker's address in the dispatcher's configuration
before training and would leave a missing worker's share unread until it comes back. The unit of work
is a shard: use several shards per worker (ImageNet's 1024 training shards are plenty).

Workers read the shard paths the trainer names, so they must see the data at the same paths (a
shared file system, or the same copy at the same place on every machine; the trainer sends absolute
paths); a worker that does not find a shard, or may not read it, fails the trainer with one line
naming the path (`input_pipeline.UNSEEN_SHARD`, `UNREADABLE_SHARD`): said by the trainer, which stops, not by the worker, which goes on
serving. Each epoch's
files are shuffled by the epoch's seed and each image's draws come from (seed, shard, position), but
which worker reads which shard, and so the order of the batches, depends on timing: a run through
the service is not bitwise reproducible.
"""

import dataclasses
import os
import re
import signal
import socket
import threading

from keras_alexnet.errors import FlagError

PROTOCOL = "grpc"
# How long the dispatcher waits for a worker's heartbeat before it gives the worker's work up (set
# here, short: a killed worker's consumers wait for it that long; live workers heartbeat far more often).
WORKER_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 5.0
_ADDRESS_RE = re.compile(r"^(?:(?P<protocol>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d+)$")


def split_address(text: str, flag: str, protocol_required: bool = False):
    """(host, port) of `HOST:PORT` or `grpc://HOST:PORT`; FlagError naming `--flag` otherwise."""
    form = f"{PROTOCOL}://HOST:PORT" if protocol_required else "HOST:PORT"
    match = _ADDRESS_RE.match(text or "")
    if not match or (protocol_required and not match.group("protocol")):
        raise FlagError(f"--{flag}={text}: expected {form}")
    if match.group("protocol") not in (None, PROTOCOL):
        raise FlagError(f"--{flag}={text}: the protocol is {PROTOCOL}:// (expected {form})")
    port = int(match.group("port"))
    check_port(port, flag, text)
    return match.group("host"), port


def check_port(port: int, flag: str, shown=None) -> None:
    """FlagError unless `port` is in 1..65535."""
    if not 1 <= port <= 65535:
        raise FlagError(f"--{flag}={port if shown is None else shown}: the port must be in 1..65535")


def check_port_free(port: int, flag: str = "port") -> None:
    """FlagError unless `port` can be bound on this machine. gRPC servers share a port with another
    process already listening there (SO_REUSEPORT), so a second dispatcher on a dispatcher's port would
    start and take some of its connections: refused instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart's closed connections do not count
        try:
            probe.bind(("", port))
        except OSError as error:
            raise FlagError(f"--{flag}={port}: in use on this machine ({error.strerror}); another dispatcher or "
                            "worker?") from None


def check_dispatcher(address: str, flag: str = "data_service", timeout: float = CONNECT_TIMEOUT_S) -> None:
    """FlagError in one line unless a gRPC server answers at `address` (`grpc://HOST:PORT`) within
    `timeout` seconds: the tf.data service client would otherwise retry for an hour."""
    import grpc

    host, port = split_address(address, flag, protocol_required=True)
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise FlagError(f"--{flag}={address}: no tf.data service dispatcher answers there within {timeout:g} s "
                        f"(start one: main.py data_service dispatcher --port={port} --work_dir=DIR)") from None
    finally:
        channel.close()


def start_dispatcher(port: int, work_dir: str):
    """TensorFlow's `DispatchServer` on `port`, fault tolerant: its state (registered datasets, jobs,
    the splits handed out) journaled in `work_dir`, so a dispatcher restarted with the same port and
    folder takes the jobs up where they were."""
    import tensorflow as tf

    service = tf.data.experimental.service
    config = service.DispatcherConfig(port=port, protocol=PROTOCOL, work_dir=work_dir, fault_tolerant_mode=True,
                                      worker_timeout_ms=WORKER_TIMEOUT_MS)
    return service.DispatchServer(config)


def start_worker(dispatcher: str, port: int = 0, host: str = ""):
    """TensorFlow's `WorkerServer` registered with `dispatcher` (`HOST:PORT`), listening on `port` (0:
    any free port) and announced to trainers as `host` (default: this machine's name). Returns (server,
    the address trainers reach it at)."""
    import tensorflow as tf

    service = tf.data.experimental.service
    dispatcher_host, dispatcher_port = split_address(dispatcher, "dispatcher")
    host = host or socket.getfqdn()
    config = service.WorkerConfig(dispatcher_address=f"{dispatcher_host}:{dispatcher_port}",
                                  worker_address=f"{host}:%port%", port=port, protocol=PROTOCOL)
    server = service.WorkerServer(config)
    return server, f"{host}:{server._address.rsplit(':', 1)[1]}"  # the bound port (no public accessor)


def serve_until_stopped(server) -> str:
    """Blocks until SIGINT or SIGTERM, then stops `server`; returns the signal's name."""
    stopped = threading.Event()
    received = []

    def handle(signum, frame):
        del frame
        received.append(signal.Signals(signum).name)
        stopped.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(0.5):
            pass
        server.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return received[0]


def distributed_train_dataset(config, address: str, drop_counter, lost_counter):
    """The training batches of `config` (an `InputConfig`, batch_size per replica) made by the tf.data
    service at `address`: `(crops, labels)` as `build_train_dataset(..., crops=True)` yields them. The
    batches' dropped and lost record counts go into `drop_counter` and `lost_counter` in this process,
    for the first pass since their reset only (`DropCounter`); remainder batches are dropped here
    with `config.drop_remainder`. A new dataset (and job) per call: one per epoch."""
    import tensorflow as tf

    from pipelines import input_pipeline

    if config.data_dir:  # the workers run elsewhere, in other folders
        config = dataclasses.replace(config, data_dir=os.path.abspath(config.data_dir))
    batches = input_pipeline.build_worker_train_dataset(config)
    batches = batches.apply(tf.data.experimental.service.distribute(
        processing_mode="distributed_epoch", service=address))
    # After the pass, an empty batch whose counts are -1 marks its end (the counters count one pass).
    crops_spec, labels_spec, _ = batches.element_spec
    empty = tf.nest.map_structure(lambda spec: tf.zeros([0] + spec.shape[1:], spec.dtype), (crops_spec, labels_spec))
    end = tf.data.Dataset.from_tensors(empty + (tf.constant([-1, -1], tf.int64),))
    batches = batches.concatenate(end)

    @tf.autograph.experimental.do_not_convert
    def count(crops, labels, counts):
        ended = counts[0] < 0
        added = []
        for counter, value in ((drop_counter, counts[0]), (lost_counter, counts[1])):
            first_pass = tf.logical_and(tf.equal(counter.passes.read_value(), 0), tf.logical_not(ended))
            added.append(counter.variable.assign_add(tf.where(first_pass, value, tf.constant(0, tf.int64))))
            with tf.control_dependencies(added[-1:]):
                added.append(counter.passes.assign_add(tf.cast(ended, tf.int64)))
        with tf.control_dependencies(added):
            return tf.nest.map_structure(tf.identity, (crops, labels))

    return input_pipeline.finish_train_batches(batches.map(count), config)


def describe(address: str) -> str:
    """The line a run through the service prints once."""
    return (f"Training input: tf.data service at {address} (distributed_epoch: each shard read once per epoch "
            "across its workers, which must see the data at the same paths); data order not bitwise "
            "reproducible; validation and 10-crop evaluation read the data here")

