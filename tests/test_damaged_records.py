"""Damaged shards: a CRC mismatch (flipped bytes) or a truncated file in a training or
validation shard is skipped from the damage on, named in one line with its byte offset and counted;
`strict_records` stops with that line; a training run finishes over it (and a strict run that stopped
resumes past it); `main.py verify` lists damaged shards with a non-zero exit; a `dataset.json` that
counts more examples than the shards hold is a one-line error. [AlexNet §2]"""

import csv
import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pipelines import input_pipeline, record_parser, records, verify
from test_input_pipeline import RESIZE, _config, _first_error, _image, _jpeg, write_shards, write_stats
from test_train_cli import main_py, make_fashion_dir, tags_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def record_offsets(path):
    """Byte offset of every record's frame in a TFRecord file (12-byte header, data, 4-byte CRC)."""
    with open(path, "rb") as f:
        data = f.read()
    offsets, position = [], 0
    while position < len(data):
        offsets.append(position)
        position += 16 + int.from_bytes(data[position:position + 8], "little")
    return offsets


def flip_byte(path, record):
    """Flips one byte inside `record`'s data: its data CRC no longer matches. Returns the frame offset."""
    offset = record_offsets(path)[record]
    with open(path, "r+b") as f:
        f.seek(offset + 12 + 20)
        byte = f.read(1)
        f.seek(offset + 12 + 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    return offset


def truncate_in(path, record):
    """Cuts the file in the middle of `record`'s data. Returns the frame offset."""
    offset = record_offsets(path)[record]
    os.truncate(path, offset + 12 + 30)
    return offset


def _data(tmp_path, split="train", per_shard=6):
    shards = [[(_jpeg(_image(seed=10 * s + i)), (s + i) % 5) for i in range(per_shard)] for s in range(2)]
    data_dir = write_shards(str(tmp_path / "data"), shards, split=split)
    write_stats(data_dir)
    return data_dir, os.path.join(data_dir, records.shard_name(split, 1, 2))


def _labels(dataset):
    return np.concatenate([y.numpy() for _, y in dataset]) if dataset.cardinality() != 0 else np.zeros([0])


def _damage_lines(text):
    return [line for line in text.splitlines() if "record(s) from there skipped" in line]


@pytest.mark.parametrize("damage, kind", [(flip_byte, "corrupted record"), (truncate_in, "truncated record")])
def test_train_pipeline_skips_the_damaged_remainder_and_counts_it_once(tmp_path, capfd, damage, kind):
    data_dir, shard = _data(tmp_path)  # two shards of 6 records; the second damaged at record 2: 4 lost
    offset = damage(shard, 2)
    dataset = input_pipeline.build_train_dataset(_config(data_dir, drop_remainder=False))
    line = f"{shard}: {kind} at byte {offset} (record 2); 4 record(s) from there skipped"
    for _ in range(2):  # every epoch (the counters taken at its end): the same records, one line, the same count
        assert len(_labels(dataset)) == 6 + 2
        assert dataset.lost_counter.take() == 4 and dataset.drop_counter.take() == 0
        assert _damage_lines(capfd.readouterr().err) == [line]
    # An epoch reading three passes (the trainer repeats its dataset when the steps outrun the records
    # left): the records three times, the damage named and counted once.
    assert len(_labels(dataset.repeat(3))) == 3 * (6 + 2)
    assert dataset.lost_counter.take() == 4 and _damage_lines(capfd.readouterr().err) == [line]


def test_two_damaged_shards_in_one_training_batch_are_each_named_and_counted(tmp_path, capfd):
    data_dir, shard = _data(tmp_path)
    first = os.path.join(data_dir, records.shard_name("train", 0, 2))
    offsets = flip_byte(first, 1), truncate_in(shard, 4)
    dataset = input_pipeline.build_train_dataset(_config(data_dir, batch_size=16, drop_remainder=False))
    assert len(_labels(dataset)) == 1 + 4 and dataset.lost_counter.take() == 5 + 2
    assert sorted(_damage_lines(capfd.readouterr().err)) == [
        f"{first}: corrupted record at byte {offsets[0]} (record 1); 5 record(s) from there skipped",
        f"{shard}: truncated record at byte {offsets[1]} (record 4); 2 record(s) from there skipped"]


def test_a_shard_without_a_recorded_count_is_named_with_the_bytes_skipped(tmp_path, capfd):
    data_dir, shard = _data(tmp_path)
    info = records.read_metadata(data_dir)
    info.splits["train"] = records.SplitInfo(num_examples=12, num_shards=2)  # dataset.json of before shard counts
    records.write_metadata(data_dir, info)
    offset = truncate_in(shard, 3)
    dataset = input_pipeline.build_train_dataset(_config(data_dir, drop_remainder=False))
    assert len(_labels(dataset)) == 6 + 3 and dataset.lost_counter.take() == 0  # what is not known is not counted
    err = capfd.readouterr().err
    assert f"{shard}: truncated record at byte {offset} (record 3); {os.path.getsize(shard) - offset} byte(s) " \
           "from there skipped (dataset.json records no record count for this shard)" in err.splitlines(), err


@pytest.mark.parametrize("damage, kind", [(flip_byte, "corrupted record"), (truncate_in, "truncated record")])
def test_validation_pipeline_skips_the_damaged_remainder(tmp_path, capfd, damage, kind):
    data_dir, shard = _data(tmp_path, split="validation")
    offset = damage(shard, 3)
    lost = record_parser.DropCounter()
    dataset = input_pipeline.build_eval_dataset(_config(data_dir, split="validation"), "ten_crop", lost_counter=lost)
    labels = _labels(dataset)  # no dataset.json count error: the damage explains the missing records
    np.testing.assert_array_equal(labels, [i % 5 for i in range(6)] + [(1 + i) % 5 for i in range(3)])
    assert lost.count() == 3
    lines = _damage_lines(capfd.readouterr().err)
    assert lines == [f"{shard}: {kind} at byte {offset} (record 3); 3 record(s) from there skipped"], lines


@pytest.mark.parametrize("split", ["train", "validation"])
def test_strict_records_stop_with_the_one_line(tmp_path, capfd, split):
    data_dir, shard = _data(tmp_path, split=split)
    offset = flip_byte(shard, 1)
    config = _config(data_dir, split=split, strict_records=True)
    build = input_pipeline.build_train_dataset if split == "train" else input_pipeline.build_eval_dataset
    message = _first_error(build(config))
    assert message.startswith(f"{shard}: corrupted record at byte {offset} (record 1) (strict_records: "), message
    assert "\n" not in message
    assert not _damage_lines(capfd.readouterr().err)  # stopped, not skipped


def test_dataset_json_counting_more_examples_is_a_one_line_error(tmp_path):
    data_dir, _ = _data(tmp_path, split="validation")
    info = records.read_metadata(data_dir)
    info.splits["validation"] = records.SplitInfo(num_examples=20, num_shards=2)
    records.write_metadata(data_dir, info)
    message = _first_error(input_pipeline.build_eval_dataset(_config(data_dir, split="validation")))
    metadata = os.path.join(data_dir, records.METADATA_FILE)
    assert message == f"{metadata}: validation: 20 examples recorded, the shards hold 12 (prepare the split again)"


def test_undecodable_images_are_still_counted_in_the_hot_path(tmp_path, capfd):
    good = _jpeg(_image(seed=1))
    data_dir = write_shards(str(tmp_path), [[(good, 0)] * 5 + [(b"\xff\xd8 not a jpeg", 1)], [(good, 2), (b"?", 3)]])
    write_stats(data_dir)
    dataset = input_pipeline.build_train_dataset(_config(data_dir, drop_remainder=False))
    assert len(_labels(dataset)) == 6 and dataset.drop_counter.take() == 2 and dataset.lost_counter.take() == 0
    assert "record(s) dropped: image does not decode" in capfd.readouterr().err


def _malformed_records():
    """Serialized records `tf.io.parse_single_example` fails on, each with verify's line for it."""
    def example(**features):
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    image = tf.train.Feature(bytes_list=tf.train.BytesList(value=[_jpeg(_image(seed=1))]))
    label = tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))
    return [
        (b"\x0a\xff", "not a tf.train.Example"),
        (example(**{records.ENCODED: image, records.LABEL: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[b"1"]))}), f"{records.LABEL} is not one int64 value"),
        (example(**{records.ENCODED: image, records.LABEL: tf.train.Feature(
            int64_list=tf.train.Int64List(value=[1, 2]))}), f"{records.LABEL} is not one int64 value"),
        (example(**{records.ENCODED: label, records.LABEL: label}), f"{records.ENCODED} is not one bytes value"),
    ]


def test_malformed_records_are_dropped_counted_and_named_by_verify(tmp_path, capfd):
    good = _jpeg(_image(seed=1))
    data_dir = str(tmp_path)
    write_stats(data_dir)
    malformed = _malformed_records()
    with tf.io.TFRecordWriter(os.path.join(data_dir, records.shard_name("validation", 0, 1))) as writer:
        for i in range(4):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[good])),
                records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))})).SerializeToString())
        for serialized, _ in malformed:
            writer.write(serialized)
    records.write_metadata(data_dir, records.DatasetInfo(
        classes=[records.ClassInfo(i, f"n{i:08d}", f"class {i}") for i in range(5)],
        splits={"validation": records.SplitInfo(8, 1)}, image_policy="alexnet", image_size=RESIZE))
    shard = os.path.join(data_dir, records.shard_name("validation", 0, 1))

    evaluation = input_pipeline.build_eval_dataset(_config(data_dir, split="validation"))
    with record_parser.user_errors():
        assert list(_labels(evaluation)) == [0, 1, 2, 3]
    assert evaluation.drop_counter.take() == 4
    named = [line for line in capfd.readouterr().err.splitlines() if "(or the record does not parse)" in line]
    assert [line.split(": image")[0] for line in named] == [f"{shard}: record {i}" for i in range(4, 8)]

    training = input_pipeline.build_train_dataset(_config(data_dir, split="validation", drop_remainder=False))
    with record_parser.user_errors():
        assert sorted(_labels(training)) == [0, 1, 2, 3]
    assert training.drop_counter.take() == 4

    (report,) = verify.verify_data_dir(data_dir).damaged
    assert report.line() == f"{shard}: 4 bad record(s), first: record 4: {malformed[0][1]}"
    assert [verify._record_problem(serialized, 0, 5) for serialized, _ in malformed] == [m for _, m in malformed]


def _verify_cli(data_dir):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "verify", f"--data_dir={data_dir}"],
                          env=env, capture_output=True, text=True, timeout=300)


def test_verify_lists_each_damaged_shard_in_one_line(tmp_path):
    good = _jpeg(_image(seed=1))
    shards = [[(good, i % 5) for i in range(5)] for _ in range(4)]
    shards[3][2] = (b"\xff\xd8 broken", 1)
    data_dir = write_shards(str(tmp_path / "data"), shards)
    write_shards(data_dir, [[(good, 0)] * 3], split="validation", metadata=False)
    names = [os.path.join(data_dir, records.shard_name("train", i, 4)) for i in range(4)]
    flipped = flip_byte(names[1], 3)
    cut = truncate_in(names[2], 1)
    clean = _verify_cli(data_dir + "_missing")
    assert clean.returncode == 1 and "no such folder" in clean.stderr

    report = verify.verify_data_dir(data_dir)
    assert [s.path for s in report.damaged] == names[1:]
    assert [s.line() for s in report.damaged] == [
        f"{names[1]}: corrupted record at byte {flipped} (record 3); 2 record(s) from there unreadable",
        f"{names[2]}: truncated record at byte {cut} (record 1); 4 record(s) from there unreadable",
        f"{names[3]}: 1 bad record(s), first: record 2: image does not decode",
    ]  # dataset.json: 5 records a shard; 3 and 1 read before the damage
    result = _verify_cli(data_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(s.line() for s in report.damaged)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"{data_dir}: 3 damaged shard(s) of 5, 6 record(s) unreadable, 1 bad record(s) " \
        "(listed above" in errors[0], errors

    for path in names[1:]:
        os.remove(path)
    records.write_metadata(data_dir, records.DatasetInfo(
        classes=[records.ClassInfo(i, f"n{i:08d}", f"class {i}") for i in range(5)],
        splits={"train": records.SplitInfo(6, 1), "validation": records.SplitInfo(3, 1)},
        image_policy="alexnet", image_size=32))
    result = _verify_cli(data_dir)  # one train shard left, which holds 5 of the 6 recorded
    metadata = os.path.join(data_dir, records.METADATA_FILE)
    assert result.returncode == 1 and result.stdout.splitlines() == [
        f"{metadata}: train: 6 examples recorded, the shards hold 5"], result.stdout + result.stderr
    records.write_metadata(data_dir, records.DatasetInfo(
        classes=[records.ClassInfo(i, f"n{i:08d}", f"class {i}") for i in range(5)],
        splits={"train": records.SplitInfo(5, 1), "validation": records.SplitInfo(3, 1)},
        image_policy="alexnet", image_size=32))
    result = _verify_cli(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"verify: {data_dir}: 2 shard(s), 8 records: all sound"


def test_verify_counts_what_training_loses_and_names_the_bytes_without_per_shard_counts(tmp_path, capfd):
    """The records `verify` calls unreadable are those the training pipeline counts lost for the same
    truncated shard (dataset.json's count minus the records before the damage); a dataset.json written
    before per-shard counts gives the bytes left unread, as training names them, except for a split of
    one shard (its count is the split's)."""
    data_dir, shard = _data(tmp_path)  # 2 train shards of 6
    offset = truncate_in(shard, 2)
    (report,) = verify.verify_data_dir(data_dir).damaged
    assert (report.records, report.lost) == (2, 4)
    assert report.line() == f"{shard}: truncated record at byte {offset} (record 2); 4 record(s) from there unreadable"
    dataset = input_pipeline.build_train_dataset(_config(data_dir, drop_remainder=False))
    assert len(_labels(dataset)) == 6 + 2 and dataset.lost_counter.take() == report.lost
    capfd.readouterr()

    info = records.read_metadata(data_dir)
    info.splits["train"] = records.SplitInfo(num_examples=12, num_shards=2)  # dataset.json of before shard counts
    records.write_metadata(data_dir, info)
    unread = os.path.getsize(shard) - offset
    (report,) = verify.verify_data_dir(data_dir).damaged
    assert report.lost is None and report.unread_bytes == unread > 0
    assert report.line() == (f"{shard}: truncated record at byte {offset} (record 2); {unread} byte(s) from there "
                             "unreadable (dataset.json records no record count for this shard)")
    result = _verify_cli(data_dir)
    assert result.returncode == 1 and result.stdout.splitlines() == [report.line()], result.stdout + result.stderr
    assert "1 damaged shard(s) of 2, 1 shard(s) unreadable from their damage on, with no record count in " \
           "dataset.json (listed above" in result.stderr, result.stderr

    os.remove(os.path.join(data_dir, records.shard_name("train", 0, 2)))
    info.splits["train"] = records.SplitInfo(num_examples=6, num_shards=1)
    records.write_metadata(data_dir, info)
    (report,) = verify.verify_data_dir(data_dir).damaged
    assert report.lost == 4, report.line()


def test_training_runs_over_damaged_shards_and_a_strict_run_resumes_past_them(tmp_path):
    data_dir = make_fashion_dir(str(tmp_path / "data"), {"train": 256, "validation": 64, "test": 32})
    train_shard = os.path.join(data_dir, records.shard_name("train", 0, 1))
    validation_shard = os.path.join(data_dir, records.shard_name("validation", 0, 1))
    train_offset = flip_byte(train_shard, 200)
    validation_offset = truncate_in(validation_shard, 60)
    common = [f"--data_dir={data_dir}", "--width=0.125", "--image_size=64", "--resize_size=72", "--epochs=2",
              "--batch_size=32", "--pca_jitter_std=0", "--ten_crop_every=0", "--noexport", "--noprogress",
              "--run_name=damaged", "--checkpoint_every_steps=1"]
    strict = main_py(common + ["--strict_records"], cwd=tmp_path)
    assert strict.returncode == 1, strict.stdout[-2000:] + strict.stderr[-2000:]
    errors = [line for line in strict.stderr.splitlines() if line.strip()]
    assert errors[-1].startswith(f"main.py train: error: {train_shard}: corrupted record at byte {train_offset} "
                                 "(record 200) (strict_records: "), errors

    # The same run without --strict_records resumes (from a checkpoint when one was written before the
    # damage came up), skips the damaged remainders and counts them: 256 - 200 training records and
    # 64 - 60 validation records, each shard named once per pass: the training shard once per epoch,
    # though an epoch of the recorded 256 examples (8 steps) reads into the next pass over the 200
    # records left; the validation shard in each epoch's validation and in the final 10-crop pass.
    result = main_py(common, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = _damage_lines(result.stderr)
    assert sorted(lines) == sorted(
        2 * [f"{train_shard}: corrupted record at byte {train_offset} (record 200); 56 record(s) from there skipped"]
        + 3 * [f"{validation_shard}: truncated record at byte {validation_offset} (record 60); "
               "4 record(s) from there skipped"]), lines
    said = re.findall(r"epoch (\d): (\d+) record\(s\) lost in damaged shard\(s\)", result.stdout)
    assert said == [("1", "56"), ("2", "56")], result.stdout
    assert "record(s) dropped" not in result.stdout + result.stderr
    with open(tmp_path / "runs" / "damaged" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(row["lost_records"]) for row in rows] == [56.0, 56.0]
    assert "epoch 2/2 |" in result.stdout
    logs = str(tmp_path / "runs" / "damaged" / "logs")
    tags = tags_in(logs)
    assert ("damaged/train", "epoch/dropped_records") not in tags  # TensorBoard: only when not zero
    assert scalar_values(logs, "damaged/train", "epoch/lost_records") == [56.0, 56.0]


def scalar_values(directory, run, tag):
    """The values logged under `tag` in the event files of `directory/run`, in step order."""
    found = []
    for path in glob.glob(os.path.join(directory, run, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    found.append((event.step, float(tf.make_ndarray(value.tensor))))
    return [v for _, v in sorted(found)]


def test_train_and_evaluate_report_exactly_what_two_damaged_shards_and_an_undecodable_image_lose(tmp_path):
    """Known damage: 3 training shards of 40 (a CRC flip at record 12: 28 lost; a truncation at record
    25: 15 lost; one undecodable image) and 2 validation shards of 20 (a truncation at record 8: 12
    lost). 7 steps of 16 per epoch over the 76 records left: every epoch reads into a second pass."""
    size = 72
    images = [_jpeg(_image(size, size, seed=i)) for i in range(8)]
    train = [[(images[(s + i) % 8], (s + i) % 5) for i in range(40)] for s in range(3)]
    train[2][7] = (b"\xff\xd8 not a jpeg", 2)
    data_dir = write_shards(str(tmp_path / "data"), train)
    write_shards(data_dir, [[(images[i % 8], i % 5) for i in range(20)] for _ in range(2)], split="validation",
                 metadata=False)
    info = records.read_metadata(data_dir)
    info.splits["validation"] = records.SplitInfo(40, 2, shard_examples=[20, 20])
    records.write_metadata(data_dir, info)
    write_stats(data_dir, mean_image=np.full((size, size, 3), 90.0, np.float32))
    shard = {(split, i): os.path.join(data_dir, records.shard_name(split, i, n))
             for split, n in (("train", 3), ("validation", 2)) for i in range(n)}
    flipped = flip_byte(shard["train", 0], 12)
    cut = truncate_in(shard["train", 1], 25)
    validation_cut = truncate_in(shard["validation", 1], 8)
    train_lines = [f"{shard['train', 0]}: corrupted record at byte {flipped} (record 12); 28 record(s) from there skipped",
                   f"{shard['train', 1]}: truncated record at byte {cut} (record 25); 15 record(s) from there skipped"]
    validation_line = (f"{shard['validation', 1]}: truncated record at byte {validation_cut} (record 8); "
                       "12 record(s) from there skipped")

    result = main_py([f"--data_dir={data_dir}", "--width=0.125", "--image_size=64", f"--resize_size={size}",
                      "--epochs=2", "--batch_size=16", "--pca_jitter_std=0", "--ten_crop_every=0", "--noexport",
                      "--noprogress", "--run_name=counts"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Each training shard once per epoch; the validation shard once per validation pass (2) and in the
    # final 10-crop pass.
    assert sorted(_damage_lines(result.stderr)) == sorted(2 * train_lines + 3 * [validation_line]), result.stderr
    assert re.findall(r"epoch (\d): (\d+) record\(s\) lost", result.stdout) == [("1", "43"), ("2", "43")]
    assert re.findall(r"epoch (\d): (\d+) record\(s\) dropped", result.stdout) == [("1", "1"), ("2", "1")]
    assert result.stderr.count("1 record(s) dropped: image does not decode") == 2, result.stderr
    with open(tmp_path / "runs" / "counts" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(float(r["lost_records"]), float(r["dropped_records"])) for r in rows] == [(43.0, 1.0), (43.0, 1.0)]
    logs = str(tmp_path / "runs" / "counts" / "logs")
    assert scalar_values(logs, "counts/train", "epoch/lost_records") == [43.0, 43.0]
    assert scalar_values(logs, "counts/train", "epoch/dropped_records") == [1.0, 1.0]

    evaluation = subprocess.run(
        [sys.executable, os.path.join(ROOT, "main.py"), "evaluate", f"--model={tmp_path / 'runs' / 'counts'}",
         "--protocols=center,ten_crop", f"--output_dir={tmp_path / 'evaluation'}"],
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""),
        capture_output=True, text=True, timeout=300)
    assert evaluation.returncode == 0, evaluation.stdout[-3000:] + evaluation.stderr[-3000:]
    assert _damage_lines(evaluation.stderr) == 2 * [validation_line], evaluation.stderr  # once per pass
    assert len(re.findall(r": (?:center|ten_crop) at Q=\d+: 28 images,", evaluation.stdout)) == 2, evaluation.stdout
