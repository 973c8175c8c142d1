"""Where training runs: one device, data-parallel replicas (VGG §3.3), several machines, or the
AlexNet two-tower model-parallel placement (AlexNet §3.2).

Every choice returns a `tf.distribute.Strategy` so one training loop (`trainer.py`) serves all:
- `default`: the default strategy, one device;
- `mirrored`: `MirroredStrategy` over all local GPUs (or the logical CPUs when there are none), the
  batch split across replicas and gradients summed, as VGG §3.3;
- `multi_worker`: `MultiWorkerMirroredStrategy` configured from `TF_CONFIG`;
- `towers`: the default strategy, plus model options placing tower 1 on the first and tower 2 on the
  second device (GPU:0 / GPU:1, or two logical CPUs), as AlexNet §3.2.
"""

import json
import os

STRATEGIES = ("default", "mirrored", "multi_worker", "towers")


def configure_logical_cpus(count: int) -> None:
    """Splits the CPU into `count` logical devices; call before TensorFlow initialises its devices."""
    import tensorflow as tf

    if count and count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def read_tf_config():
    """(config dict, None) from the `TF_CONFIG` environment variable, or (None, why it cannot drive
    `multi_worker`). The one place that parses it."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None, "--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and task)"
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if task["type"] not in ("worker", "chief") or not workers:
            return None, "TF_CONFIG task type must be 'worker' or 'chief' with a non-empty cluster"
    except (ValueError, KeyError, TypeError) as error:
        return None, f"TF_CONFIG is not a valid cluster description ({error})"
    return config, None


def tf_config_problem():
    """Why `TF_CONFIG` cannot drive `multi_worker`, or None when it can."""
    return read_tf_config()[1]


def tf_config_workers() -> int:
    """Processes in the `TF_CONFIG` cluster (workers and chief); 1 without a valid one."""
    config, _ = read_tf_config()
    if config is None:
        return 1
    cluster = config["cluster"]
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def _local_devices():
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    return gpus if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(name: str):
    """(strategy, model_options): the strategy and the options `registry.build_model` needs for it."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy(), {}
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_local_devices()), {}
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy(), {}
    if name == "towers":
        devices = _local_devices()
        if len(devices) < 2:
            raise ValueError("--strategy=towers needs two devices (two GPUs, or --logical_cpus=2)")
        return tf.distribute.get_strategy(), {"tower_devices": tuple(devices[:2])}
    raise ValueError(f"unknown strategy '{name}' (choose from: {', '.join(STRATEGIES)})")


def is_chief(strategy) -> bool:
    """True on the one process that writes logs and the real checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def num_workers(strategy) -> int:
    """The number of processes (input pipelines) training together: 1 unless multi-worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    spec = resolver.cluster_spec().as_dict() or {}
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))
