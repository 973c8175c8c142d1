"""pipelines/prepare.py on real-format image folders: records checked byte-level (keys, labels, shapes),
undecodable files skipped and counted, deterministic shuffling, 1-based tensorflow/models labels,
resume after an interrupted run, and settings changes refused."""

import io
import json
import os

import pytest
import tensorflow as tf

from keras_alexnet.errors import UserError
from pipelines import prepare, records
from pipelines.sources import load
from tests.image_fixtures import BROKEN, make_folder, read_records, read_split

KEYS = {records.ENCODED, records.FORMAT, records.HEIGHT, records.WIDTH, records.CHANNELS, records.COLORSPACE,
        records.LABEL, records.SYNSET, records.TEXT, records.FILENAME}


def _config(data_dir, **kw):
    kw.setdefault("image_size", 24)
    kw.setdefault("num_workers", 1)
    kw.setdefault("num_shards", {"train": 3, "validation": 2})
    kw.setdefault("validation_holdout", 0)
    return prepare.PrepareConfig(data_dir=str(data_dir), **kw)


def test_a_source_without_validation_gets_a_tenth_of_train_held_out():
    """Own class folders have no validation split; training needs one (AlexNet §5's plateaus)."""
    train = list(range(95))
    held = prepare.hold_out({"train": train}, None, seed=0)
    assert len(held["validation"]) == 9 and sorted(held["train"] + held["validation"]) == train
    assert prepare.hold_out({"train": train, "validation": [1]}, None, seed=0) == {"train": train, "validation": [1]}
    assert prepare.auto_holdout({"train": [0] * 500_000}) == prepare.AUTO_HOLDOUT_MAX


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    made = make_folder(str(root / "train"), per_class=4, broken=BROKEN)
    make_folder(str(root / "val"), per_class=2)
    with open(root / "train" / "cat" / "notes.txt", "w") as f:
        f.write("not an image")
    return root, made


def test_folder_records_byte_level(image_root, tmp_path, capsys):
    root, made = image_root
    source = load.from_paths(str(root / "train"), str(root / "val"))
    info = prepare.prepare(source, _config(tmp_path / "out"))
    err = capsys.readouterr().err

    assert [c.synset for c in info.classes] == ["cat", "dog", "fox"]
    held = {split: [sum(1 for _ in tf.data.TFRecordDataset(path)) for path in records.list_shards(str(tmp_path / "out"), split)]
            for split in ("train", "validation")}
    assert sum(held["train"]) == 12 and held["validation"] == [3, 3]
    assert info.splits["train"] == records.SplitInfo(num_examples=12, num_shards=3, skipped=2, shard_examples=held["train"])
    assert info.splits["validation"] == records.SplitInfo(num_examples=6, num_shards=2, skipped=0,
                                                          shard_examples=held["validation"])
    assert records.read_metadata(str(tmp_path / "out")).splits == info.splits
    assert [os.path.basename(p) for p in records.list_shards(str(tmp_path / "out"), "train")] == [
        "train-00000-of-00003", "train-00001-of-00003", "train-00002-of-00003"]
    # the broken files are logged with their paths; the non-image file is reported as ignored
    for rel, kind in made.items():
        if kind in BROKEN:
            assert f"skipped {os.path.join(str(root / 'train'), rel)}: " in err
    assert "notes.txt: not an image file extension" in err

    train = read_split(str(tmp_path / "out"), "train")
    assert len(train) == 12
    by_name = {}
    for record in train:
        assert set(record) == KEYS
        assert record[records.FORMAT] == b"JPEG" and record[records.COLORSPACE] == b"RGB"
        assert record[records.CHANNELS] == 3
        image = tf.io.decode_jpeg(record[records.ENCODED]).numpy()
        assert image.shape == (record[records.HEIGHT], record[records.WIDTH], 3) == (24, 24, 3)
        label = record[records.LABEL]
        assert record[records.SYNSET] == info.classes[label].synset.encode()
        assert record[records.TEXT] == info.classes[label].text.encode()
        by_name[record[records.FILENAME].decode()] = record[records.SYNSET].decode()
    expected = {os.path.basename(rel): rel.split(os.sep)[0] for rel, kind in made.items() if kind not in BROKEN}
    assert by_name == expected

    metadata = json.load(open(tmp_path / "out" / records.METADATA_FILE))
    assert metadata["label_offset"] == 0 and metadata["image_policy"] == "alexnet" and metadata["image_size"] == 24
    assert open(tmp_path / "out" / records.LABELS_FILE).read() == "cat\tcat\ndog\tdog\nfox\tfox\n"
    assert "images/s" in err and "ETA" in err


def test_same_seed_same_bytes_other_seed_other_order(image_root, tmp_path):
    root, _ = image_root
    source = load.from_paths(str(root / "train"))
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        prepare.prepare(source, _config(tmp_path / name, seed=seed, num_shards={"train": 1}))
    shard = "train-00000-of-00001"
    a, b, c = (open(tmp_path / n / shard, "rb").read() for n in "abc")
    assert a == b
    names = [[r[records.FILENAME] for r in read_records(str(tmp_path / n / shard))] for n in "ac"]
    assert names[0] != names[1] and sorted(names[0]) == sorted(names[1])


def test_label_offset_one_writes_tensorflow_models_labels(image_root, tmp_path):
    root, _ = image_root
    source = load.from_paths(str(root / "train"))
    prepare.prepare(source, _config(tmp_path / "zero", num_shards={"train": 1}))
    prepare.prepare(source, _config(tmp_path / "one", label_offset=1, num_shards={"train": 1}))
    zero = read_split(str(tmp_path / "zero"), "train")
    one = read_split(str(tmp_path / "one"), "train")
    assert [r[records.LABEL] + 1 for r in zero] == [r[records.LABEL] for r in one]
    assert min(r[records.LABEL] for r in one) == 1
    info = records.read_metadata(str(tmp_path / "one"))
    assert info.label_offset == records.TF_MODELS_LABEL_OFFSET
    # readers: label_in_record - label_offset is the class index, whose synset the record names
    for r in one:
        assert info.classes[r[records.LABEL] - info.label_offset].synset.encode() == r[records.SYNSET]


def test_validation_holdout_is_deterministic_and_disjoint(image_root, tmp_path):
    root, _ = image_root
    source = load.from_paths(str(root / "train"))
    for name in "ab":
        prepare.prepare(source, _config(tmp_path / name, validation_holdout=4))
    train = {r[records.FILENAME] for r in read_split(str(tmp_path / "a"), "train")}
    val = [r[records.FILENAME] for r in read_split(str(tmp_path / "a"), "validation")]
    assert len(val) + len(train) == 12 and not train & set(val)
    assert val == [r[records.FILENAME] for r in read_split(str(tmp_path / "b"), "validation")]


def test_resume_after_interruption_redoes_only_missing_shards(image_root, tmp_path, capsys):
    root, _ = image_root
    source = load.from_paths(str(root / "train"), str(root / "val"))
    out = tmp_path / "out"
    prepare.prepare(source, _config(out))
    reference = {p: open(p, "rb").read() for s in records.SPLITS for p in records.list_shards(str(out), s)}
    # An interrupted run: dataset.json not yet written, one shard missing, one left half-written.
    os.remove(out / records.METADATA_FILE)
    os.remove(out / "train-00001-of-00003")
    with open(out / "validation-00000-of-00002.tmp", "wb") as f:
        f.write(b"half a shard")
    kept = out / "train-00000-of-00003"
    os.utime(kept, (1, 1))
    capsys.readouterr()

    info = prepare.prepare(source, _config(out))
    assert "4 of 5 shards already complete" in capsys.readouterr().err
    assert os.stat(kept).st_mtime == 1  # not rewritten
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert {p: open(p, "rb").read() for s in records.SPLITS for p in records.list_shards(str(out), s)} == reference
    assert info.splits["train"].num_examples == 12 and info.splits["train"].skipped == 2


def test_other_settings_are_refused_then_overwritten(image_root, tmp_path):
    root, _ = image_root
    source = load.from_paths(str(root / "train"))
    out = tmp_path / "out"
    prepare.prepare(source, _config(out))
    with pytest.raises(UserError, match="train-00000-of-00003: made with other settings"):
        prepare.prepare(source, _config(out, jpeg_quality=80))
    with pytest.raises(UserError, match="other settings"):
        prepare.prepare(source, _config(out, num_shards={"train": 2}))
    info = prepare.prepare(source, _config(out, jpeg_quality=80, num_shards={"train": 2}, overwrite=True))
    assert info.splits["train"].num_shards == 2
    assert len(records.list_shards(str(out), "train")) == 2


def test_vgg_and_none_policies_keep_aspect(tmp_path):
    make_folder(str(tmp_path / "in"), classes=("a",), kinds=("rgb_jpeg", "cmyk_jpeg"), per_class=2, size=(30, 60))
    source = load.from_paths(str(tmp_path / "in"))
    prepare.prepare(source, _config(tmp_path / "vgg", image_policy="vgg", image_size=40))
    prepare.prepare(source, _config(tmp_path / "none", image_policy="none", image_size=0))
    for name, shape in (("vgg", (40, 80)), ("none", (30, 60))):
        for r in read_split(str(tmp_path / name), "train"):
            assert (r[records.HEIGHT], r[records.WIDTH]) == shape
            assert tf.io.decode_jpeg(r[records.ENCODED]).shape == shape + (3,)
    assert records.read_metadata(str(tmp_path / "none")).image_size == 0


def test_two_worker_processes_match_one(image_root, tmp_path):
    root, _ = image_root
    source = load.from_paths(str(root / "train"), str(root / "val"))
    prepare.prepare(source, _config(tmp_path / "one"))
    prepare.prepare(source, _config(tmp_path / "two", num_workers=2))
    for split in ("train", "validation"):
        for a, b in zip(records.list_shards(str(tmp_path / "one"), split), records.list_shards(str(tmp_path / "two"), split)):
            assert open(a, "rb").read() == open(b, "rb").read()


def test_unknown_validation_class_is_one_line_error(image_root, tmp_path):
    root, _ = image_root
    make_folder(str(tmp_path / "val"), classes=("cat", "wolf"), kinds=("rgb_jpeg",), per_class=1)
    with pytest.raises(UserError, match="class 'wolf' is not among the training classes"):
        load.from_paths(str(root / "train"), str(tmp_path / "val"))


def test_progress_line_format():
    counter = type("C", (), {"value": 50})()
    progress = prepare.Progress(200, counter, 1.0, stream=io.StringIO())
    line = progress.line()
    assert line.startswith("prepare: 50/200 images (25.0%)") and "images/s" in line and "ETA " in line
