"""Fine-tuning a trained run on other classes (`train --init_from=RUN`, `keras_alexnet/training/finetune.py`):
real Fashion-MNIST photos, a source run on 6 classes and a target task on the 4 others with 40 images a
class; fine-tuning beats training from scratch for the same steps; frozen layers end bitwise as copied.
"""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from keras_alexnet.errors import FlagError, UserError
from keras_alexnet.training import config_from_values, train
from test_train_cli import NAMES, read_idx, write_stats

SOURCE_CLASSES = (0, 1, 2, 3, 4, 5)  # T-shirt/top .. Sandal
TARGET_CLASSES = (6, 7, 8, 9)  # Shirt, Sneaker, Bag, Ankle boot
SIZE = 72


def make_subset_dir(data_dir, classes, per_class, size=SIZE):
    """Prepared data (records.py contract) of the Fashion-MNIST `classes`, relabelled 0..n-1: `per_class`
    {split: images per class}, train from the training file, validation from the test file."""
    import tensorflow as tf

    from pipelines import records

    files = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "validation": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    os.makedirs(data_dir, exist_ok=True)
    splits, train_pixels = {}, None
    for split, count in per_class.items():
        images, labels = (read_idx(name) for name in files[split])
        chosen = [(index, new) for new, old in enumerate(classes) for index in np.flatnonzero(labels == old)[:count]]
        chosen.sort()  # classes interleaved, as prepare's shuffle leaves them
        rgb = tf.image.grayscale_to_rgb(tf.image.resize(images[[i for i, _ in chosen]][..., None], (size, size)))
        rgb = tf.cast(tf.clip_by_value(tf.round(rgb), 0, 255), tf.uint8).numpy()
        if split == "train":
            train_pixels = rgb.astype(np.float64)
        with tf.io.TFRecordWriter(os.path.join(data_dir, records.shard_name(split, 0, 1))) as writer:
            for image, (_, label) in zip(rgb, chosen):
                feature = {
                    records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[tf.io.encode_jpeg(image, quality=95).numpy()])),
                    records.LABEL: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    records.HEIGHT: tf.train.Feature(int64_list=tf.train.Int64List(value=[size])),
                    records.WIDTH: tf.train.Feature(int64_list=tf.train.Int64List(value=[size])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        splits[split] = records.SplitInfo(num_examples=len(chosen), num_shards=1)
    infos = [records.ClassInfo(i, f"c{old}", NAMES[old]) for i, old in enumerate(classes)]
    records.write_metadata(data_dir, records.DatasetInfo(classes=infos, splits=splits, image_policy="alexnet",
                                                         image_size=size, source="fashion-mnist subset"))
    write_stats(data_dir, train_pixels)
    return data_dir


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
# A small AlexNet trained the default run's way (Glorot init, inputs x 1/64 folded into conv1 when saved,
# a linear decay from 0.04) on 6 classes: the source of every fine-tuning below.
SOURCE_RECIPE = dict(architecture="alexnet", width=0.125, resize_size=SIZE, image_size=64, batch_size=32,
                     init="glorot", input_scale=1 / 64, learning_rate=0.04, lr_schedule="linear",
                     warmup_epochs=0.3, pca_jitter_std=0.0, ten_crop_every=0, steps_per_call=10,
                     mixed_precision=False, export=False, progress=False)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """`<folder>/runs/alexnet_fashion_mnist`: the source run, on 6 Fashion-MNIST classes."""
    folder = tmp_path_factory.mktemp("finetune")
    data_dir = make_subset_dir(str(folder / "data" / "source"), SOURCE_CLASSES, {"train": 800, "validation": 20})
    result = train(config_from_values(dict(SOURCE_RECIPE, data_dir=data_dir, epochs=2, runs_dir=str(folder / "runs"),
                                           run_name="alexnet_fashion_mnist")), printer=lambda line: None)
    return folder, result.run_dir


@pytest.fixture(scope="module")
def target_data(source_run):
    """The target task: the 4 other classes, 40 training images a class."""
    folder, _ = source_run
    return make_subset_dir(str(folder / "data" / "target"), TARGET_CLASSES, {"train": 40, "validation": 50})


def _target_values(folder, data_dir, **values):
    base = {key: value for key, value in SOURCE_RECIPE.items() if key not in ("architecture", "width")}
    return dict(base, **dict(dict(data_dir=data_dir, epochs=6, runs_dir=str(folder / "runs")), **values))


def _weights(path):
    from keras_alexnet.evaluation.models import load_keras_model

    model = load_keras_model(path)
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def test_fine_tuning_beats_training_from_scratch_on_new_classes(source_run, target_data):
    """Same data, steps and seed: from the 6-class source (every layer but fc8 copied, fc8 new for the 4
    classes) the 10-crop validation error is far below training from scratch (chance: 0.75). Measured with
    sources of seeds 0 and 1 and targets of seeds 0-2: from scratch 0.58-0.665, fine-tuned 0.17-0.435, the
    gap at least 0.175."""
    folder, source_dir = source_run
    scratch = train(config_from_values(dict(_target_values(folder, target_data, run_name="scratch"),
                                            architecture="alexnet", width=0.125)), printer=lambda line: None)
    lines = []
    tuned = train(config_from_values(_target_values(folder, target_data, run_name="tuned", init_from=source_dir,
                                                    learning_rate=0.01)), printer=lines.append)
    scratch_error = scratch.validation["ten_crop"]["top1_error"]
    tuned_error = tuned.validation["ten_crop"]["top1_error"]
    assert tuned_error < 0.5 and tuned_error < scratch_error - 0.1, (tuned_error, scratch_error)

    initialised = [line for line in lines if line.startswith("Initialised from")]
    assert len(initialised) == 1, lines
    assert ("copied conv1, conv2, conv3, conv4, conv5, fc6, fc7; fc8 new for 4 classes (the architecture's "
            "initialisation)") in initialised[0]
    mean = f"Mean: the mean image from {os.path.join(source_dir, 'stats.npz')}, the one --init_from's weights"
    assert any(line.startswith(mean) for line in lines), lines
    assert any(line.startswith("Hint: --learning_rate is at its default 0.01; fine-tuning usually starts at "
                               "about 1/10 of the source's rate (0.04 -> --learning_rate=0.004)") for line in lines)
    record = json.loads(open(os.path.join(tuned.run_dir, "run.json")).read())
    assert record["weights_from"]["path"] == os.path.abspath(source_dir)
    assert record["weights_from"]["origin"] == "train" and record["weights_from"]["num_classes"] == 6
    assert record["weights_from"]["classifier"] == "new" and record["weights_from"]["frozen"] == []
    assert record["config"]["model"]["width"] == 0.125  # the source's network
    assert record["num_classes"] == 4 and record["class_names"] == [NAMES[i] for i in TARGET_CLASSES]


def test_frozen_layers_end_bitwise_as_copied_under_mixed_precision_and_a_resume(source_run, target_data):
    """--freeze_through=fc6: conv1-fc6 get no update at all (the paper's SGD decays weights inside the
    update: a trainable variable with a zero gradient would still shrink), in bfloat16 mixed precision,
    and after a resume; fc7 and fc8 train. The source's checkpoint holds conv1 for inputs x 1/64, this run
    trains on inputs x 1/32: conv1 is halved when copied and the saved model folds 1/32 back in, all
    powers of two, so the saved models' conv1 are comparable bit for bit."""
    folder, source_dir = source_run
    values = _target_values(folder, target_data, run_name="frozen", init_from=source_dir, freeze_through="fc6",
                            mixed_precision=True, epochs=1, steps_per_epoch=3, steps_per_call=1,
                            input_scale=1 / 32)
    lines = []
    train(config_from_values(values), printer=lines.append)
    assert not any(line.startswith("Hint:") for line in lines)  # a learning rate other than the default
    lines = []
    resumed = train(config_from_values(dict(values, epochs=2)), printer=lines.append)
    assert any(line.startswith("Resuming from") for line in lines), lines
    assert any(line.startswith("Initialised from") and "; conv1 x0.5 for --input_scale" in line for line in lines)
    assert any(line.startswith("Initialised from") and line.endswith("(as run.json records it)") for line in lines)
    record = json.loads(open(os.path.join(resumed.run_dir, "run.json")).read())
    assert record["config"]["mixed_precision"] is True and record["resumes"]
    assert record["weights_from"]["frozen"] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6"]

    source, tuned = _weights(os.path.join(source_dir, "model.keras")), _weights(resumed.model_path)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6"):
        for before, after in zip(source[name], tuned[name]):
            assert before.tobytes() == after.tobytes(), name
    for name in ("fc7",):
        assert any(not np.array_equal(before, after) for before, after in zip(source[name], tuned[name])), name


def test_a_layer_that_does_not_fit_is_named_with_both_shapes(source_run, target_data):
    folder, source_dir = source_run
    values = _target_values(folder, target_data, run_name="bigger", init_from=source_dir, resize_size=104,
                            image_size=96, epochs=1)
    with pytest.raises(UserError) as refused:
        train(config_from_values(values), printer=lambda line: None)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"--init_from={source_dir}: layer fc6 has shapes [(")
    assert "(fc6's input follows the crop: the source used --image_size=64)" in message


def test_a_given_network_option_that_differs_from_the_source_is_refused(source_run, target_data):
    folder, source_dir = source_run
    for change, expected in ((dict(architecture="alexnet_1tower"),
                              f"--architecture=alexnet_1tower: --init_from={source_dir} was built with "
                              "--architecture=alexnet; leave --architecture out"),
                             (dict(width=0.25), f"--width=0.25: --init_from={source_dir} was built with --width=0.125"),
                             (dict(freeze_through="conv7"), "--freeze_through=conv7: alexnet has no such layer")):
        with pytest.raises(FlagError, match=expected.replace("(", r"\(").replace(".", r"\.")):
            train(config_from_values(_target_values(folder, target_data, run_name="refused", init_from=source_dir,
                                                    **change)), printer=lambda line: None)
    assert not os.path.exists(folder / "runs" / "refused")


def readme_commands() -> list:
    """The command block of README's "Fine-tuning on your own classes"."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        section = f.read().split("### Fine-tuning on your own classes", 1)[1]
    return re.search(r"```\n(.+?)\n```", section, flags=re.S).group(1).splitlines()


def test_readme_fine_tuning_commands_pasted(source_run):
    """README's commands as a user pastes them, in a folder holding the source run (runs/alexnet_fashion_mnist)
    and photos/<class>/ of 4 other classes, 45 photos each: one line says what was copied, new and frozen;
    the frozen layers are bitwise the source's; the mean and the input scale (1/64) are the source's; evaluate
    reads the run."""
    import tensorflow as tf

    folder, source_dir = source_run
    images, labels = read_idx("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz")
    for label in TARGET_CLASSES:
        photos = folder / "photos" / NAMES[label].replace("/", "_")
        photos.mkdir(parents=True)
        for n, index in enumerate(np.flatnonzero(labels == label)[-45:]):
            (photos / f"{n}.png").write_bytes(tf.io.encode_png(images[index][..., None]).numpy())
    outputs = []
    for command in readme_commands():
        args = shlex.split(command)
        assert args[:2] == ["python", "main.py"], command
        done = subprocess.run([sys.executable, os.path.join(ROOT, "main.py")] + args[2:], cwd=folder, env=ENV,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, command + "\n" + done.stdout[-2000:] + done.stderr[-3000:]
        outputs.append(done.stdout)
    trained = outputs[2]
    initialised = [line for line in trained.splitlines() if line.startswith("Initialised from")]
    assert len(initialised) == 1, trained[:3000]
    assert ("copied conv1, conv2, conv3, conv4, conv5, fc6, fc7; fc8 new for 4 classes (the architecture's "
            "initialisation); frozen conv1, conv2, conv3, conv4, conv5 [VGG §3.1]") in initialised[0]
    source_stats = os.path.join("runs", "alexnet_fashion_mnist", "stats.npz")
    assert f"Mean: the mean image from {source_stats}, the one --init_from's weights were trained with" in trained
    assert "Hint:" not in trained  # the README gives the learning rate

    run_dir = folder / "runs" / "mine_finetuned"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["weights_from"]["frozen"] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert record["config"]["input_scale"] == 1 / 64 and record["weights_from"]["conv1_rescaled_by"] == 1.0
    assert record["class_names"] == sorted(NAMES[i].replace("/", "_") for i in TARGET_CLASSES)
    with np.load(os.path.join(source_dir, "stats.npz")) as source, np.load(run_dir / "stats.npz") as used:
        assert np.array_equal(source["mean_image"], used["mean_image"])
    source, tuned = _weights(os.path.join(source_dir, "model.keras")), _weights(str(run_dir / "model.keras"))
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        for before, after in zip(source[name], tuned[name]):
            assert before.tobytes() == after.tobytes(), name
    for name in ("fc6", "fc7"):
        assert all(not np.array_equal(before, after) for before, after in zip(source[name], tuned[name])), name
    assert "10 crops" in outputs[3], outputs[3]


def test_from_an_imported_run_the_network_and_mean_rgb_are_the_sources(source_run, target_data, tmp_path):
    """A run folder as `import_weights` writes it (model.keras with the input scale folded in, run.json with
    origin "import" and the model config, stats.npz with a mean RGB only), here a small VGG A: the new run
    is a VGG A of the source's width without --architecture or --width, subtracts the source's mean RGB,
    and with everything below fc8 frozen ends with the source's weights bit for bit (conv1 multiplied by 64
    for --input_scale=1/64 while training, folded back when saved)."""
    from keras_alexnet import runs
    from keras_alexnet.registry import build_model
    from keras_alexnet.training.config import ModelConfig

    folder, _ = source_run
    imported = tmp_path / "vgg_imported"
    network = ModelConfig("vgg_a", width=0.0625, lrn=False)
    imported.mkdir()
    build_model("vgg_a", num_classes=10, input_shape=(32, 32, 3), **network.build_options()).save(
        str(imported / "model.keras"))
    runs.write_stats(str(imported), {"mean_rgb": np.array([90.0, 80.0, 70.0], np.float32)})
    runs.write_record(str(imported), runs.RunRecord(
        architecture="vgg_a", num_classes=10, class_names=NAMES, image_size=32, test_scale=36, mean="rgb",
        origin="import", mean_note="imported", model_config=dataclasses.asdict(network)))
    lines = []
    result = train(config_from_values(_target_values(
        folder, target_data, run_name="from_vgg", init_from=str(imported), freeze_through="fc7", resize_size=36,
        image_size=32, epochs=1, steps_per_epoch=2)), printer=lines.append)
    initialised = [line for line in lines if line.startswith("Initialised from")]
    assert len(initialised) == 1 and (f"(import, vgg_a, 10 classes; {imported / 'model.keras'}): copied conv1_1, "
                                      "conv2_1, conv3_1, conv3_2, conv4_1, conv4_2, conv5_1, conv5_2, fc6, fc7; "
                                      "fc8 new for 4 classes") in initialised[0], lines
    assert "conv1 x64 for --input_scale" in initialised[0]
    record = json.loads(open(os.path.join(result.run_dir, "run.json")).read())
    assert record["architecture"] == "vgg_a" and record["config"]["model"]["width"] == 0.0625
    assert record["mean"] == "rgb" and record["weights_from"]["origin"] == "import"
    with np.load(os.path.join(result.run_dir, "stats.npz")) as used:
        assert used["mean_rgb"].tolist() == [90.0, 80.0, 70.0]
    source, tuned = _weights(str(imported / "model.keras")), _weights(result.model_path)
    for name in record["weights_from"]["copied"]:
        for before, after in zip(source[name], tuned[name]):
            assert before.tobytes() == after.tobytes(), name


@pytest.mark.parametrize("where", ["model.keras", "checkpoint"])
def test_from_the_source_runs_model_file_or_one_checkpoint(source_run, target_data, where):
    """--init_from names the run's model.keras (conv1 with the 1/64 input scale folded in: multiplied by 64
    for this run, which trains at the source's 1/64) or one checkpoint prefix (conv1 as trained): either way
    the copied, frozen layers end bitwise as the source's saved model has them."""
    import tensorflow as tf

    folder, source_dir = source_run
    path = (os.path.join(source_dir, "model.keras") if where == "model.keras"
            else tf.train.latest_checkpoint(os.path.join(source_dir, "checkpoints")))
    lines = []
    result = train(config_from_values(_target_values(
        folder, target_data, run_name=f"from_{where}", init_from=path, freeze_through="fc7", epochs=1,
        steps_per_epoch=1)), printer=lines.append)
    initialised = [line for line in lines if line.startswith("Initialised from")]
    assert len(initialised) == 1 and f"(train, alexnet, 6 classes; {os.path.abspath(path)}" in initialised[0], lines
    assert ("; conv1 x64 for --input_scale" in initialised[0]) == (where == "model.keras"), initialised
    source, tuned = _weights(os.path.join(source_dir, "model.keras")), _weights(result.model_path)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"):
        for before, after in zip(source[name], tuned[name]):
            assert before.tobytes() == after.tobytes(), name
