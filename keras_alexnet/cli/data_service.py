"""`python main.py data_service dispatcher|worker`: TensorFlow's tf.data service, to run the training
input pipeline on other machines (`pipelines/data_service.py`, docs/data_service.md).

    python main.py data_service dispatcher --port=P --work_dir=DIR
    python main.py data_service worker --dispatcher=HOST:P [--port=Q]
    python main.py train --data_dir=... --data_service=grpc://HOST:P ...

The dispatcher runs fault tolerant: its state is journaled in --work_dir, so a dispatcher restarted
with the same port and folder takes its jobs up again. A worker registers with the dispatcher and runs
the pipelines trainers send; it reads the data at the trainer's paths (a shared file system). Each
prints one line saying where it listens and runs until Ctrl-C or SIGTERM, which stops it (exit 0).
"""

from absl import flags

from keras_alexnet.cli import flaghelp

FLAGS = flags.FLAGS
TAKES_ARGUMENTS = True
ROLES = ("dispatcher", "worker")

flags.DEFINE_integer("port", None, "Port to listen on: required for the dispatcher (trainers and workers "
                     "connect to it; a restarted dispatcher needs the same one); a worker takes any free port "
                     "unless given.", module_name=flaghelp.DISTRIBUTION)
flags.DEFINE_string("work_dir", None, "Dispatcher: folder of its journal (registered pipelines, jobs, the "
                    "shards handed out), read back when it restarts.", module_name=flaghelp.DISTRIBUTION)
flags.DEFINE_string("dispatcher", None, "Worker: the dispatcher's HOST:PORT.", module_name=flaghelp.DISTRIBUTION)
flags.DEFINE_string("host", None, "Worker: the name trainers reach this machine by (default: its fully "
                    "qualified name).", module_name=flaghelp.DISTRIBUTION)

_ROLE_FLAGS = {"dispatcher": ("port", "work_dir"), "worker": ("dispatcher", "port", "host")}


def validate(argv) -> None:
    """The role and its flags, in one line, before TensorFlow loads."""
    from keras_alexnet import outputs
    from keras_alexnet.errors import FlagError
    from pipelines import data_service

    if len(argv) != 1 or argv[0] not in ROLES:
        raise FlagError(f"expected one of: {', '.join(ROLES)} (e.g. main.py data_service dispatcher --port=5050 "
                        "--work_dir=DIR)")
    role = argv[0]
    for name in ("port", "work_dir", "dispatcher", "host"):
        if FLAGS[name].present and name not in _ROLE_FLAGS[role]:
            raise FlagError(f"--{name} is not a {role} flag (a {role} takes --{', --'.join(_ROLE_FLAGS[role])})")
    if FLAGS.port is not None:
        data_service.check_port(FLAGS.port, "port")
    if role == "dispatcher":
        if FLAGS.port is None:
            raise FlagError("--port is required: the port the dispatcher listens on")
        if not FLAGS.work_dir:
            raise FlagError("--work_dir is required: the folder of the dispatcher's journal")
        outputs.check_writable_dir(FLAGS.work_dir, "work_dir")
    else:
        if not FLAGS.dispatcher:
            raise FlagError("--dispatcher is required: the dispatcher's HOST:PORT")
        data_service.split_address(FLAGS.dispatcher, "dispatcher")
    if FLAGS.port is not None:  # last: the flags' own problems first
        data_service.check_port_free(FLAGS.port)


def run(argv) -> None:
    import os
    import socket

    from pipelines import data_service

    if argv[0] == "dispatcher":
        os.makedirs(FLAGS.work_dir, exist_ok=True)
        server = data_service.start_dispatcher(FLAGS.port, FLAGS.work_dir)
        here = f"{socket.getfqdn()}:{FLAGS.port}"
        print(f"tf.data service dispatcher listening on port {FLAGS.port} (trainers: --data_service=grpc://{here}; "
              f"workers: --dispatcher={here}), journal in {FLAGS.work_dir}; Ctrl-C or SIGTERM stops it", flush=True)
        name = "dispatcher"
    else:
        server, address = data_service.start_worker(FLAGS.dispatcher, FLAGS.port or 0, FLAGS.host or "")
        print(f"tf.data service worker listening at {address}, serving the training pipelines of the dispatcher "
              f"at {FLAGS.dispatcher} (it reads the data at the trainers' paths); Ctrl-C or SIGTERM stops it",
              flush=True)
        name = "worker"
    signal_name = data_service.serve_until_stopped(server)
    print(f"tf.data service {name} stopped ({signal_name})", flush=True)
