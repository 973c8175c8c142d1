"""prepare on real-world folders: non-UTF-8 file names
stored as the OS's bytes, symlinks followed once (loops and second links reported, never duplicated),
symlinked class folders, a named Fashion-MNIST folder without its IDX files, failed writes as one line
without leftovers, and the temporaries of a killed run removed at the next start."""

import errno
import os

import pytest

from keras_alexnet.errors import UserError
from pipelines import prepare, records, shard_writer
from pipelines.sources import fashion_mnist, folder, load
from tests.image_fixtures import image_bytes, make_folder, read_split


def _config(data_dir, **kw):
    return prepare.PrepareConfig(data_dir=str(data_dir), image_size=24, num_workers=1, validation_holdout=0, **kw)


def _write_jpeg(path, seed=0):
    with open(path, "wb") as f:
        f.write(image_bytes("rgb_jpeg", seed))


def test_non_utf8_file_names_are_stored_as_their_bytes(tmp_path):
    root = tmp_path / "train"
    make_folder(str(root), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=2)
    raw = b"caf\xe9_\xff.jpg"  # Latin-1 bytes: not UTF-8
    _write_jpeg(os.path.join(os.fsencode(root / "cat"), raw), seed=5)

    source = load.from_paths(str(root))
    assert sum(1 for item in source.splits["train"] if os.fsencode(item.filename) == raw) == 1
    info = prepare.prepare(source, _config(tmp_path / "out"))
    assert info.splits["train"].num_examples == 5
    names = {r[records.FILENAME] for r in read_split(str(tmp_path / "out"), "train")}
    assert raw in names  # round-trips: the OS's bytes, not a replacement character
    # a rerun finds the same fingerprints (the name hashes the same way) and resumes without work
    again = prepare.prepare(load.from_paths(str(root)), _config(tmp_path / "out"))
    assert again.splits == info.splits


def test_a_non_utf8_class_folder_is_one_line(tmp_path):
    root = os.fsencode(tmp_path / "train")
    os.makedirs(os.path.join(root, b"\xe9t\xe9"))
    _write_jpeg(os.path.join(root, b"\xe9t\xe9", b"a.jpg"))
    with pytest.raises(UserError, match="not UTF-8"):
        folder.class_folders(os.fsdecode(root))


def test_a_symlink_loop_is_followed_once_and_reported(tmp_path):
    root = tmp_path / "train"
    make_folder(str(root), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=3)
    os.makedirs(root / "cat" / "more")
    _write_jpeg(root / "cat" / "more" / "deep.jpg", seed=9)
    os.symlink("..", root / "cat" / "more" / "loop")  # cat/more/loop -> cat
    os.symlink("img_003_rgb_jpeg.JPEG", root / "dog" / "again.jpg")  # a second path to one file

    ignored = []
    items = folder.scan(str(root), {"cat": 0, "dog": 1}, ignored)
    assert len(items) == 7  # 3 + 1 cats, 3 dogs: nothing listed twice (a broken link would be reported)
    assert not [line for line in ignored if "broken" in line]
    assert len({os.path.realpath(item.path) for item in items}) == 7
    assert [line for line in ignored if "symlink loop" in line] == [
        f"{root / 'cat' / 'more' / 'loop'}: a symlink loop back to {root / 'cat'}, not listed again"]
    assert [line for line in ignored if "same file" in line] == [
        f"{root / 'dog' / 'img_003_rgb_jpeg.JPEG'}: the same file as {root / 'dog' / 'again.jpg'}, not listed again"]


def test_a_symlinked_class_folder_works(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    make_folder(str(elsewhere), classes=("fox",), kinds=("rgb_jpeg",), per_class=2)
    root = tmp_path / "train"
    make_folder(str(root), classes=("cat",), kinds=("rgb_jpeg",), per_class=2)
    os.symlink(elsewhere / "fox", root / "fox")
    ignored = []
    items = folder.scan(str(root), {"cat": 0, "fox": 1}, ignored)
    assert sorted(item.label for item in items) == [0, 0, 1, 1] and ignored == []


@pytest.mark.parametrize("target, message", [(".", "which holds the class folders"),
                                             ("cat", "the same folder as class 'cat'")])
def test_a_class_folder_linking_to_the_root_or_another_class_is_one_line(tmp_path, target, message):
    root = tmp_path / "train"
    make_folder(str(root), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=2)
    os.symlink(target, root / "zebra")
    with pytest.raises(UserError, match=message) as refused:
        load.from_paths(str(root))
    assert str(refused.value).startswith(f"{root / 'zebra'}: ") and "\n" not in str(refused.value)


def test_a_named_fashion_mnist_folder_without_idx_files_never_downloads(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("TFDS was asked for Fashion-MNIST")

    monkeypatch.setattr(fashion_mnist, "load_tfds", no_download)
    with pytest.raises(UserError, match=f"{tmp_path}/train-images-idx3-ubyte.gz: no such file"):
        load.fashion_mnist(str(tmp_path), fallback=False)


def test_a_failed_shard_write_is_one_line_without_leftovers(tmp_path, monkeypatch):
    root = tmp_path / "train"
    make_folder(str(root), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=2)
    out = tmp_path / "out"

    def disk_full(data_dir, task, encoding, advance=None):
        temp = os.path.join(data_dir, task.name + shard_writer.TEMP_SUFFIX)
        with open(temp, "wb") as f:
            f.write(b"half a shard")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), temp)

    monkeypatch.setattr(shard_writer, "write_shard", disk_full)
    with pytest.raises(UserError) as failed:
        prepare.prepare(load.from_paths(str(root)), _config(out))
    assert str(failed.value) == f"{out / 'train-00000-of-00001.tmp'}: cannot write (No space left on device)"
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_temporaries_of_a_killed_run_are_removed_at_the_next_start(tmp_path):
    root = tmp_path / "train"
    make_folder(str(root), classes=("cat", "dog"), kinds=("rgb_jpeg",), per_class=2)
    out = tmp_path / "out"
    os.makedirs(out / shard_writer.STATE_DIR)
    for stale in ("train-00007-of-00009.tmp", os.path.join(shard_writer.STATE_DIR, "train-00000-of-00001.json.tmp")):
        (out / stale).write_bytes(b"")  # the 0-byte leftovers of a run killed on a full disk
    prepare.prepare(load.from_paths(str(root)), _config(out))
    leftovers = [n for d in (out, out / shard_writer.STATE_DIR) for n in os.listdir(d) if n.endswith(".tmp")]
    assert leftovers == []
