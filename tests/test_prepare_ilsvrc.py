"""ILSVRC-2012 as distributed, in miniature: a train tar of per-synset tars and a flat val tar with its
ground truth (synset per line like TFDS's validation_labels.txt, or devkit ILSVRC2012_IDs + a synset
list), read without extraction; crafted `../` and absolute members never reach the disk."""

import os

import pytest
import tensorflow as tf

from keras_alexnet.errors import UserError
from pipelines import prepare, records
from pipelines.sources import ilsvrc, load, safe_member_name
from tests.image_fixtures import image_bytes, make_ilsvrc_train_tar, make_ilsvrc_val_tar, read_split

SYNSETS = ("n01440764", "n01443537", "n01484850")
VAL_SYNSETS = ["n01484850", "n01440764", "n01443537", "n01440764", "n01484850"]


@pytest.fixture()
def tars(tmp_path):
    train = str(tmp_path / "ILSVRC2012_img_train.tar")
    val = str(tmp_path / "ILSVRC2012_img_val.tar")
    make_ilsvrc_train_tar(train, SYNSETS, per_synset=4)
    names = make_ilsvrc_val_tar(val, VAL_SYNSETS)
    labels = tmp_path / "validation_labels.txt"
    labels.write_text("".join(s + "\n" for s in VAL_SYNSETS))
    return train, val, str(labels), names


def _config(data_dir, **kw):
    return prepare.PrepareConfig(data_dir=str(data_dir), image_size=20, num_workers=1, **kw)


def test_train_and_val_tars_with_synset_ground_truth(tars, tmp_path):
    train, val, labels, names = tars
    source = load.from_paths(train, val, validation_labels=labels,
                             class_names=_class_names(tmp_path))
    info = prepare.prepare(source, _config(tmp_path / "out"))
    assert [c.synset for c in info.classes] == list(SYNSETS)
    assert info.classes[0].text == "tench, Tinca tinca"
    assert info.splits["train"].num_examples == 12 and info.splits["validation"].num_examples == 5

    for record in read_split(str(tmp_path / "out"), "train"):
        synset = record[records.SYNSET].decode()
        assert record[records.FILENAME].decode().startswith(synset + "_")
        assert record[records.LABEL] == SYNSETS.index(synset)
        assert tf.io.decode_jpeg(record[records.ENCODED]).shape == (20, 20, 3)
    got = {r[records.FILENAME].decode(): r[records.SYNSET].decode() for r in read_split(str(tmp_path / "out"), "validation")}
    assert got == dict(zip(names, VAL_SYNSETS))
    assert not [n for n in os.listdir(tmp_path) if n not in ("out", "ILSVRC2012_img_train.tar",
                                                              "ILSVRC2012_img_val.tar", "validation_labels.txt",
                                                              "synset_words.txt")]


def _class_names(tmp_path):
    path = tmp_path / "synset_words.txt"
    path.write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n")
    return str(path)


def test_devkit_ids_with_synset_list(tars, tmp_path):
    train, val, _, names = tars
    by_id = ["n01443537", "n01484850", "n01440764"]  # meta.mat order differs from sorted order
    (tmp_path / "ids.txt").write_text("".join(f"{by_id.index(s) + 1}\n" for s in VAL_SYNSETS))
    (tmp_path / "synsets.txt").write_text("\n".join(by_id) + "\n")
    source = load.from_paths(train, val, validation_labels=str(tmp_path / "ids.txt"), synsets=str(tmp_path / "synsets.txt"))
    labels = {source.classes[i.label].synset for i in source.splits["validation"]}
    assert labels == set(VAL_SYNSETS)
    assert {i.filename: source.classes[i.label].synset for i in source.splits["validation"]} == dict(zip(names, VAL_SYNSETS))
    with pytest.raises(UserError, match="pass --synsets"):
        load.from_paths(train, val, validation_labels=str(tmp_path / "ids.txt"))


def test_ground_truth_must_match_the_images(tars, tmp_path):
    train, val, _, _ = tars
    (tmp_path / "short.txt").write_text("n01440764\n")
    with pytest.raises(UserError, match="5 images but the ground truth has 1 lines"):
        load.from_paths(train, val, validation_labels=str(tmp_path / "short.txt"))


def test_tfds_validation_labels_are_the_default():
    path = ilsvrc.default_validation_labels()
    assert path.endswith(os.path.join("imagenet2012", "validation_labels.txt"))
    truth = ilsvrc.read_ground_truth(path)
    assert len(truth) == 50000 and truth[0] == "n01751748"


def test_crafted_members_are_ignored_and_never_written(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    evil = image_bytes("rgb_jpeg", seed=9)
    crafted = [
        ("outer", "../escaped.JPEG", evil),
        ("outer", "/tmp/absolute_escape.JPEG", evil),
        ("n01440764", "../../inner_escape.JPEG", evil),
        ("n01440764", "../n01443537.tar", evil),
    ]
    train = str(work / "train.tar")
    make_ilsvrc_train_tar(train, SYNSETS[:2], per_synset=2, extra_members=crafted)
    before = set(os.listdir(tmp_path)), os.path.exists("/tmp/absolute_escape.JPEG")
    source = load.from_paths(train)
    info = prepare.prepare(source, _config(work / "out"))
    err = capsys.readouterr().err
    assert info.splits["train"].num_examples == 4  # only the real images
    assert err.count("unsafe member name") == 4
    assert (set(os.listdir(tmp_path)), os.path.exists("/tmp/absolute_escape.JPEG")) == before
    assert sorted(os.listdir(work)) == ["out", "train.tar"]
    names = {r[records.FILENAME] for r in read_split(str(work / "out"), "train")}
    assert not any(b"escape" in n for n in names)


def test_safe_member_name():
    assert safe_member_name("n01440764/./a.JPEG") == "n01440764/a.JPEG"
    for bad in ("../a", "a/../../b", "/etc/passwd", "C:\\x", "", "./"):
        assert safe_member_name(bad) is None


def test_compressed_tar_is_one_line_error(tmp_path):
    import tarfile

    path = tmp_path / "train.tar.gz"
    with tarfile.open(path, "w:gz"):
        pass
    with pytest.raises(UserError, match="not an uncompressed tar"):
        load.from_paths(str(path))
