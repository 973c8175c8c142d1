"""The tf.data pipelines on small generated shards: outputs, mean subtraction, label offsets, bad
records, sharding across workers, determinism, evaluation protocols (AlexNet §4.1, VGG §3.1-3.2)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_alexnet.errors import UserError
from pipelines import eval_crops, input_pipeline, record_parser, records

SIZE, RESIZE = 24, 32


def _image(height=RESIZE, width=RESIZE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)


def _png(image):
    return tf.io.encode_png(image).numpy()


def _jpeg(image):
    return tf.io.encode_jpeg(image, quality=95).numpy()


def _example(encoded=None, label=None):
    feature = {}
    if encoded is not None:
        feature[records.ENCODED] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))
    if label is not None:
        feature[records.LABEL] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(data_dir, shards, split="train", num_classes=5, metadata=True, label_offset=0):
    """`shards`: a list of shards, each a list of (encoded or None, stored label or None)."""
    os.makedirs(data_dir, exist_ok=True)
    for index, shard in enumerate(shards):
        with tf.io.TFRecordWriter(os.path.join(data_dir, records.shard_name(split, index, len(shards)))) as writer:
            for encoded, label in shard:
                writer.write(_example(encoded, label))
    if metadata:
        info = records.DatasetInfo(
            classes=[records.ClassInfo(i, f"n{i:08d}", f"class {i}") for i in range(num_classes)],
            splits={split: records.SplitInfo(sum(len(s) for s in shards), len(shards),
                                             shard_examples=[len(s) for s in shards])},
            image_policy="alexnet",
            image_size=RESIZE,
            label_offset=label_offset,
        )
        records.write_metadata(data_dir, info)
    return data_dir


def write_stats(data_dir, mean_image=None, mean_rgb=(100.0, 110.0, 120.0)):
    mean_image = np.full((RESIZE, RESIZE, 3), 90.0, np.float32) if mean_image is None else mean_image
    q, _ = np.linalg.qr(np.random.default_rng(9).normal(size=(3, 3)))
    np.savez(
        os.path.join(data_dir, records.STATS_FILE),
        mean_image=np.asarray(mean_image, np.float32),
        mean_rgb=np.asarray(mean_rgb, np.float32),
        eigenvalues=np.array([300.0, 60.0, 10.0], np.float32),
        eigenvectors=q.astype(np.float32),
    )


def _config(data_dir, **overrides):
    settings = dict(data_dir=data_dir, image_size=SIZE, resize_size=RESIZE, batch_size=4, shuffle_buffer=64, cycle_length=4)
    settings.update(overrides)
    return input_pipeline.InputConfig(**settings)


def _all(dataset):
    images, labels = [], []
    for x, y in dataset:
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def jpeg_dir(tmp_path):
    shards = [[(_jpeg(_image(seed=10 * s + i)), (2 * s + i) % 5) for i in range(6)] for s in range(2)]
    data_dir = write_shards(str(tmp_path / "data"), shards)
    write_stats(data_dir)
    return data_dir


def test_train_batches(jpeg_dir):
    dataset = input_pipeline.build_train_dataset(_config(jpeg_dir))
    assert dataset.element_spec[0].shape.as_list() == [4, SIZE, SIZE, 3]
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert len(batches) == 3  # 12 records, batch 4, remainder dropped
    for images, labels in batches:
        assert images.dtype == np.float32 and labels.dtype == np.int32
        assert ((labels >= 0) & (labels < 5)).all()
    assert dataset.drop_counter.count() == 0


def test_mean_image_follows_random_crop_and_flip(tmp_path):
    """Images equal to the mean image give exact zeros whatever the crop and flip (AlexNet §2, §4.1)."""
    mean = _image(seed=3)
    data_dir = write_shards(str(tmp_path), [[(_png(mean), i % 5) for i in range(16)]])
    write_stats(data_dir, mean_image=mean)
    dataset = input_pipeline.build_train_dataset(_config(data_dir, pca_jitter_std=0.0, mean="image"))
    images, _ = _all(dataset)
    assert images.shape == (16, SIZE, SIZE, 3)
    np.testing.assert_allclose(images, 0.0, atol=1e-4)
    # The crops themselves vary (random positions and flips).
    raw, _ = _all(input_pipeline.build_train_dataset(_config(data_dir, pca_jitter_std=0.0, mean="none")))
    assert len({r.tobytes() for r in raw}) > 4


def test_flips_are_reflections_of_the_crop(tmp_path):
    image = _image(seed=11)
    data_dir = write_shards(str(tmp_path), [[(_png(image), 0)] * 24])
    config = _config(data_dir, random_crop=False, pca_jitter_std=0.0, mean="none")
    images, _ = _all(input_pipeline.build_train_dataset(config))
    crop = image[4:28, 4:28].astype(np.float32)
    flipped = [bool(np.array_equal(x, crop[:, ::-1])) for x in images]
    assert all(f or np.array_equal(x, crop) for f, x in zip(flipped, images))
    assert 0 < sum(flipped) < len(flipped)


def test_mean_rgb_and_image_central_crop(tmp_path):
    image = _image(seed=4)
    data_dir = write_shards(str(tmp_path), [[(_png(image), 1)] * 4])
    mean_image = np.random.default_rng(5).uniform(0, 255, (RESIZE, RESIZE, 3)).astype(np.float32)
    write_stats(data_dir, mean_image=mean_image, mean_rgb=(10.0, 20.0, 30.0))
    fixed = dict(random_crop=False, flip=False, pca_jitter_std=0.0)
    crop = image[4:28, 4:28].astype(np.float32)
    rgb, _ = _all(input_pipeline.build_train_dataset(_config(data_dir, mean="rgb", **fixed)))
    np.testing.assert_allclose(rgb[0], crop - np.array([10.0, 20.0, 30.0]), atol=1e-4)
    per_pixel, _ = _all(input_pipeline.build_train_dataset(_config(data_dir, mean="image", **fixed)))
    np.testing.assert_allclose(per_pixel[0], crop - mean_image[4:28, 4:28], atol=1e-4)


def test_pca_jitter_is_one_colour_shift_per_image_in_the_eigenvector_span(tmp_path):
    image = _image(seed=6)
    data_dir = write_shards(str(tmp_path), [[(_png(image), 0)] * 8])
    write_stats(data_dir)
    fixed = dict(random_crop=False, flip=False, mean="none")
    jittered, _ = _all(input_pipeline.build_train_dataset(_config(data_dir, pca_jitter_std=0.1, **fixed)))
    shifts = jittered - image[4:28, 4:28].astype(np.float32)
    per_image = shifts.reshape(8, -1, 3)
    np.testing.assert_allclose(per_image, per_image[:, :1, :].repeat(per_image.shape[1], 1), atol=1e-3)
    with np.load(os.path.join(data_dir, records.STATS_FILE)) as stats:
        vectors, values = stats["eigenvectors"], stats["eigenvalues"]
    alphas = np.linalg.solve(vectors, per_image[:, 0, :].T).T / np.sqrt(values)  # delta = P (α * sqrt(λ))
    assert 0.01 < np.abs(alphas).max() < 0.6  # α ~ N(0, 0.1): within 6 standard deviations, not all ~0
    assert len(set(alphas[:, 0].tolist())) == 8  # redrawn per image


def test_tensorflow_models_records_are_one_based(tmp_path):
    """No dataset.json: tensorflow/models shards, labels 1..N, read as 0..N-1 (records.py)."""
    shards = [[(_jpeg(_image(seed=i)), i + 1) for i in range(5)]]
    data_dir = write_shards(str(tmp_path), shards, metadata=False)
    config = _config(data_dir, mean="none", pca_jitter_std=0.0, batch_size=5)
    info = input_pipeline.dataset_info(config)
    assert info.label_offset == 1 and info.num_classes is None and info.num_examples == {}
    assert input_pipeline.count_examples(config) == 5
    _, labels = _all(input_pipeline.build_eval_dataset(config, "center"))
    np.testing.assert_array_equal(labels, np.arange(5))
    _, labels = _all(input_pipeline.build_train_dataset(config))
    np.testing.assert_array_equal(np.sort(labels), np.arange(5))


def test_corrupt_jpeg_is_dropped_and_counted(tmp_path, capfd):
    good = _jpeg(_image(seed=1))
    truncated = good[: len(good) // 3]
    shards = [[(good, 0)] * 5 + [(b"not an image", 1)], [(good, 2)] * 4 + [(truncated, 3)]]
    data_dir = write_shards(str(tmp_path), shards)
    write_stats(data_dir)
    counter = record_parser.DropCounter()
    train = input_pipeline.build_train_dataset(_config(data_dir, drop_remainder=False), drop_counter=counter)
    _, labels = _all(train)
    assert len(labels) == 9 and counter.take() == 2 and counter.count() == 0
    _, labels = _all(train)  # second epoch (after take()): counted again
    assert len(labels) == 9 and counter.take() == 2
    _, labels = _all(train.repeat(3))  # three passes in one epoch (the trainer's repeat): one pass counted
    assert len(labels) == 27 and counter.take() == 2
    evaluation = input_pipeline.build_eval_dataset(_config(data_dir), "ten_crop")
    _, labels = _all(evaluation)
    np.testing.assert_array_equal(labels, [0] * 5 + [2] * 4)
    assert evaluation.drop_counter.count() == 2
    assert "train-00000-of-00002: record 5: image does not decode" in capfd.readouterr().err


def _first_error(dataset):
    with pytest.raises(UserError) as caught:
        with record_parser.user_errors():
            for _ in dataset:
                pass
    return str(caught.value)


def test_missing_key_is_a_one_line_error_naming_the_shard(tmp_path):
    good = _jpeg(_image(seed=1))
    shards = [[(good, 0)] * 3, [(good, 1), (good, None), (good, 2)]]
    data_dir = write_shards(str(tmp_path), shards)
    write_stats(data_dir)
    shard = os.path.join(data_dir, "train-00001-of-00002")
    message = _first_error(input_pipeline.build_train_dataset(_config(data_dir)))
    assert message == f"{shard}: record 1: missing key {records.LABEL}"
    message = _first_error(input_pipeline.build_eval_dataset(_config(data_dir)))
    assert message == f"{shard}: record 1: missing key {records.LABEL}"
    write_shards(data_dir, [[(good, 0)], [(None, 1)]])  # no image: dropped and counted, as undecodable
    dataset = input_pipeline.build_eval_dataset(_config(data_dir))
    assert list(_all(dataset)[1]) == [0] and dataset.drop_counter.take() == 1


def test_label_out_of_range_is_a_one_line_error_naming_the_shard(tmp_path):
    good = _jpeg(_image(seed=1))
    data_dir = write_shards(str(tmp_path), [[(good, 0), (good, 4), (good, 5)]], num_classes=5)
    write_stats(data_dir)
    shard = os.path.join(data_dir, "train-00000-of-00001")
    message = _first_error(input_pipeline.build_train_dataset(_config(data_dir)))
    assert message == f"{shard}: record 2: label 5 outside [0, 5)"
    assert "\n" not in message
    # tensorflow/models-style label 0 (unused there) is below the range after the offset.
    data_dir = write_shards(str(tmp_path / "tfm"), [[(good, 1), (good, 0)]], metadata=False)
    message = _first_error(input_pipeline.build_eval_dataset(_config(data_dir, mean="none")))
    assert message.endswith("record 1: label -1 outside [0, ...) (stored 1-based)")


def test_bad_record_inside_model_fit_becomes_user_error(tmp_path):
    import keras

    good = _png(_image(seed=1))
    data_dir = write_shards(str(tmp_path), [[(good, 0)] * 4 + [(good, 9)]])
    write_stats(data_dir)
    dataset = input_pipeline.build_train_dataset(_config(data_dir, batch_size=1, mean="rgb"))
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(UserError, match=r"train-00000-of-00001: record 4: label 9 outside \[0, 5\)"):
        with record_parser.user_errors():
            model.fit(dataset, epochs=1, verbose=0, shuffle=False)


def test_missing_or_empty_data_dir(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match=f"^{missing}: data directory does not exist$"):
        input_pipeline.build_train_dataset(_config(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=f"^{empty}: data directory is empty$"):
        input_pipeline.build_eval_dataset(_config(str(empty)))
    data_dir = write_shards(str(tmp_path / "data"), [[(_png(_image()), 0)]])
    with pytest.raises(UserError, match=r"has no validation shards \(validation-NNNNN-of-NNNNN\)$"):
        input_pipeline.build_eval_dataset(_config(data_dir, split="validation"))


def test_missing_stats_file(tmp_path):
    data_dir = write_shards(str(tmp_path), [[(_png(_image()), 0)]])
    stats = os.path.join(data_dir, records.STATS_FILE)
    with pytest.raises(UserError, match=f"^{stats}: statistics file not found"):
        input_pipeline.build_train_dataset(_config(data_dir))
    input_pipeline.build_train_dataset(_config(data_dir, mean="none", pca_jitter_std=0.0))


def _id_shards(tmp_path, num_shards, per_shard):
    shards = [[(_png(_image(8, 8, seed=s)), s * per_shard + i) for i in range(per_shard)] for s in range(num_shards)]
    return write_shards(str(tmp_path), shards, num_classes=num_shards * per_shard)


@pytest.mark.parametrize("num_shards", [4, 1])
def test_per_worker_sharding(tmp_path, num_shards):
    """Each input pipeline reads a disjoint part (whole shards, or records when shards are too few)."""
    per_shard = 16 // num_shards
    data_dir = _id_shards(tmp_path, num_shards, per_shard)
    config = _config(data_dir, image_size=8, resize_size=8, mean="none", pca_jitter_std=0.0, batch_size=4)
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=4)
        dataset = input_pipeline.build_train_dataset(config, input_context=context)
        assert dataset.element_spec[1].shape.as_list() == [1]  # per-replica batch: 4 / 4
        _, labels = _all(dataset)
        seen.append(set(labels.tolist()))
        assert len(labels) == 8
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(16))


def test_deterministic_mode_gives_identical_batches(jpeg_dir):
    config = _config(jpeg_dir, deterministic=True, seed=7)
    first = [(x.numpy(), y.numpy()) for x, y in input_pipeline.build_train_dataset(config)]
    dataset = input_pipeline.build_train_dataset(config)
    second = [(x.numpy(), y.numpy()) for x, y in dataset]
    assert len(first) == len(second) == 3
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    third = [x.numpy() for x, _ in dataset]  # the next epoch draws new crops and order
    assert any(not np.array_equal(a, b) for a, (b, _) in zip(third, first))


def test_crops_and_the_finisher_give_the_float_batches(tmp_path):
    """The trainer's form (uint8 crops, float work in the step) gives the same batches, times the scale."""
    data_dir = write_shards(str(tmp_path), [[(_jpeg(_image(seed=i)), i % 5) for i in range(12)]])
    write_stats(data_dir, mean_image=_image(seed=40).astype(np.float32))
    config = _config(data_dir, deterministic=True, seed=5, mean="image")
    floats = [(x.numpy(), y.numpy()) for x, y in input_pipeline.build_train_dataset(config)]
    crops = input_pipeline.build_train_dataset(config, crops=True)
    assert crops.element_spec[0]["image"].shape.as_list() == [4, SIZE, SIZE, 3]
    assert crops.element_spec[0]["image"].dtype == tf.uint8
    finish = input_pipeline.train_batch_finisher(config, scale=0.25)
    pairs = list(zip(floats, crops))
    assert len(pairs) == 3
    for (images, labels), (batch_crops, crop_labels) in pairs:
        np.testing.assert_allclose(finish(batch_crops).numpy(), images * 0.25, rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(crop_labels.numpy(), labels)
    assert np.abs(floats[0][0]).max() > 20  # the mean image subtracted, colour shifts of a few levels


def test_eval_protocols(tmp_path):
    image = _image(RESIZE, 48, seed=8)
    data_dir = write_shards(str(tmp_path), [[(_png(image), 3)] * 3])
    write_stats(data_dir, mean_rgb=(1.0, 2.0, 3.0))
    config = _config(data_dir, mean="rgb", batch_size=2)
    centred = image.astype(np.float32) - np.array([1.0, 2.0, 3.0], np.float32)
    square = centred[:, 8:40]

    x, y = next(iter(input_pipeline.build_eval_dataset(config, "center")))
    assert x.shape == (2, SIZE, SIZE, 3) and y.numpy().tolist() == [3, 3]
    np.testing.assert_allclose(x[0], square[4:28, 4:28], atol=1e-4)

    x, _ = next(iter(input_pipeline.build_eval_dataset(config, "ten_crop")))
    assert x.shape == (2, 10, SIZE, SIZE, 3)
    np.testing.assert_allclose(x[1], eval_crops.corner_and_center_crops(square, SIZE), atol=1e-4)
    np.testing.assert_allclose(x[0, 1], square[:SIZE, -SIZE:], atol=1e-4)  # top-right
    np.testing.assert_allclose(x[0, 6], square[:SIZE, -SIZE:][:, ::-1], atol=1e-4)  # its mirror

    x, _ = next(iter(input_pipeline.build_eval_dataset(config, "multi_crop", scale=RESIZE)))
    assert x.shape == (2, 50, SIZE, SIZE, 3)
    np.testing.assert_allclose(x[0, 0], centred[:SIZE, :SIZE], atol=1e-4)
    np.testing.assert_allclose(x[0, 24], centred[-SIZE:, -SIZE:], atol=1e-4)
    np.testing.assert_allclose(x[0, 25], centred[:SIZE, :SIZE][:, ::-1], atol=1e-4)

    batches = list(input_pipeline.build_eval_dataset(config, "dense", scale=48))
    assert len(batches) == 3 and batches[0][0].shape == (1, 48, 72, 3)
    np.testing.assert_allclose(
        batches[0][0][0], eval_crops.resize_shorter_side(image, 48) - np.array([1.0, 2.0, 3.0]), atol=1e-3
    )


def test_vgg_scale_jitter_pipeline(tmp_path):
    shards = [[(_jpeg(_image(40, 56, seed=i)), i % 5) for i in range(8)]]
    data_dir = write_shards(str(tmp_path), shards)
    write_stats(data_dir)
    config = _config(data_dir, scale_jitter=(SIZE, 2 * SIZE), mean="rgb")
    images, labels = _all(input_pipeline.build_train_dataset(config))
    assert images.shape == (8, SIZE, SIZE, 3) and np.isfinite(images).all()
    assert input_pipeline.test_scale(config) == 36
    x, _ = next(iter(input_pipeline.build_eval_dataset(config, "dense")))
    assert x.shape == (1, 36, 50, 3)


@pytest.mark.parametrize("cache", [True, "file"])
def test_cache(jpeg_dir, tmp_path, cache):
    cache = str(tmp_path / "cache") if cache == "file" else cache
    dataset = input_pipeline.build_train_dataset(_config(jpeg_dir, cache=cache, drop_remainder=False))
    first = np.sort(_all(dataset)[1])
    np.testing.assert_array_equal(first, np.sort(_all(dataset)[1]))  # second epoch from the cache
    assert len(first) == 12


def test_dropped_records_reach_each_epochs_logs(tmp_path):
    """Training reports the epoch's undecodable records in its logs (summary line, CSV, TensorBoard)."""
    import keras

    from callbacks.dropped_records import DroppedRecords

    good = _jpeg(_image(seed=3))
    data_dir = write_shards(str(tmp_path), [[(good, 0)] * 7 + [(b"\xff\xd8 broken", 1)]])
    write_stats(data_dir)
    counter = record_parser.DropCounter()
    train = input_pipeline.build_train_dataset(_config(data_dir, batch_size=2, mean="none", pca_jitter_std=0.0),
                                               drop_counter=counter)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(5, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    said = []
    history = model.fit(train, epochs=2, verbose=0, callbacks=[DroppedRecords(counter, said.append)])
    assert history.history["dropped_records"] == [1, 1]
    assert said == [f"epoch {n}: 1 record(s) dropped: their image could not be decoded (main.py verify names them)"
                    for n in (1, 2)]
