"""`python main.py verify --data_dir=DIR`: checks every shard's records once (pipelines/verify.py).

Every record's CRCs (TensorFlow's reader), its Example keys, its label range and that its image
decodes, for every split's shards, and the example counts of `dataset.json` [AlexNet §2]. Prints one
line per damaged shard (so that just those can be prepared again) with the records its damage makes
unreadable (from `dataset.json`'s per-shard counts; the bytes for a folder prepared before them), and
a summary; exit code 1 when any shard is damaged or a count differs, 0 otherwise. Training skips and
counts what this command reports (or stops at it with `train --strict_records`).
"""

import os

from absl import flags

from keras_alexnet.cli import flaghelp
from pipelines import records

FLAGS = flags.FLAGS

flags.DEFINE_string("data_dir", None, "Folder of prepared shards (with dataset.json).", module_name=flaghelp.DATA)


def validate() -> None:
    from keras_alexnet.errors import FlagError, UserError

    if not FLAGS.data_dir:
        raise FlagError("--data_dir is required (the folder of prepared shards)")
    if not os.path.isdir(FLAGS.data_dir):
        raise UserError(f"--data_dir: {FLAGS.data_dir}: no such folder")
    if not any(records.is_shard_name(name) for name in os.listdir(FLAGS.data_dir)):
        raise UserError(f"--data_dir={FLAGS.data_dir}: no shards (NAME-NNNNN-of-NNNNN files) to verify")


def run(argv) -> None:
    from keras_alexnet.errors import UserError
    from pipelines.verify import verify_data_dir

    def on_shard(shard):
        if not shard.ok:
            print(shard.line(), flush=True)

    report = verify_data_dir(FLAGS.data_dir, on_shard=on_shard)
    for line in report.count_lines:
        print(line)
    if not report.shards:
        raise UserError(f"{FLAGS.data_dir}: no shards (NAME-NNNNN-of-NNNNN files) to verify")
    if report.ok:
        total = sum(shard.records for shard in report.shards)
        print(f"verify: {FLAGS.data_dir}: {len(report.shards)} shard(s), {total:,} records: all sound")
        return
    damaged = report.damaged
    counted = [shard.lost for shard in damaged if shard.lost is not None]
    uncounted = sum(1 for shard in damaged if shard.damage and shard.lost is None)
    bad = sum(shard.bad for shard in damaged)
    parts = [f"{len(damaged)} damaged shard(s) of {len(report.shards)}"]
    if counted:
        parts.append(f"{sum(counted):,} record(s) unreadable")
    if uncounted:
        parts.append(f"{uncounted} shard(s) unreadable from their damage on, with no record count in "
                     f"{records.METADATA_FILE}")
    if bad:
        parts.append(f"{bad:,} bad record(s)")
    if report.count_lines:
        parts.append(f"{len(report.count_lines)} count(s) differing from {records.METADATA_FILE}")
    raise UserError(f"{FLAGS.data_dir}: {', '.join(parts)} (listed above: prepare those shards again, or remove "
                    "them)")
