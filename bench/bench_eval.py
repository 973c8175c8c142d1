"""Evaluation and serving costs, printed as ratios (VGG §3.2; the export's serving signature).

1. Per-image cost of VGG §3.2's dense evaluation against 150-crop multi-crop evaluation (5x5 grid x 2
   flips x 3 scales), both at Q = 256, 384, 512. The paper argues that dense evaluation is far cheaper
   ("there is no need to sample multiple crops at test time, which is less efficient as it requires
   network re-computation for each crop"). Dense: the fully-convolutional net on the whole image and on
   its flip at each scale; multi-crop: 50 crops of 224 per scale through the net in batches.
2. The exported `serving_default` signature (JPEG bytes in: decode, rescale, crop, mean, net, top-5)
   against a direct call of the model on preprocessed crops: latency at batch 1 and throughput at batch
   32, centre crop (and 10 crops for the throughput).

    .venv/bin/python bench/bench_eval.py                 # VGG-A at width 0.25, AlexNet at width 1
    .venv/bin/python bench/bench_eval.py --vgg_width 1 --images 1 --repeats 1   # the full VGG-A

The image is a 4:3 photo-sized JPEG (shorter side 384 before rescaling). Times are medians over
`--repeats` after one warm-up call; numbers move with the load of a shared machine, compare the ratios.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def median_seconds(fn, repeats):
    fn()  # warm-up: tracing, oneDNN primitives
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dense_vs_multi_crop(args):
    import tensorflow as tf

    from keras_alexnet.dense_eval import to_fully_convolutional
    from keras_alexnet.evaluation import protocols
    from keras_alexnet.registry import build_model
    from pipelines import eval_crops

    model = build_model("vgg_a", num_classes=1000, width=args.vgg_width)
    fcn = to_fully_convolutional(model)
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (384, 512, 3)).astype(np.float32) for _ in range(args.images)]
    scales = [256, 384, 512]

    @tf.function(reduce_retracing=True)
    def dense_step(image):
        return protocols.dense_probabilities(lambda x: fcn(x, training=False)["score_map"], image)

    @tf.function(reduce_retracing=True)
    def crop_step(crops):
        return eval_crops.crop_probabilities(lambda x: model(x, training=False), crops)

    rescaled = {q: [eval_crops.resize_shorter_side(im, q)[None] for im in images] for q in scales}
    grids = {q: [eval_crops.grid_crops(r[0], 224)[None] for r in rescaled[q]] for q in scales}

    def dense():
        return [dense_step(r).numpy() for q in scales for r in rescaled[q]]

    def multi_crop():
        return [crop_step(g).numpy() for q in scales for g in grids[q]]

    dense_s = median_seconds(dense, args.repeats) / args.images
    crops_s = median_seconds(multi_crop, args.repeats) / args.images
    import hardware

    print(f"VGG-A width {args.vgg_width}, Q = 256, 384, 512, {args.images} image(s), per image; "
          f"{hardware.describe()}:")
    print(f"  dense (3 scales x 2 flips):          {dense_s * 1000:9.1f} ms")
    print(f"  multi-crop (3 scales x 50 crops):    {crops_s * 1000:9.1f} ms")
    print(f"  multi-crop / dense cost ratio:       {crops_s / dense_s:9.2f}x")
    return dense_s, crops_s


def serving_vs_direct(args):
    import tensorflow as tf

    from keras_alexnet import export
    from keras_alexnet.registry import build_model

    model = build_model("alexnet", num_classes=1000, width=args.alexnet_width)
    rng = np.random.default_rng(1)
    jpeg = tf.io.encode_jpeg(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8), quality=90).numpy()
    mean = rng.uniform(100, 130, (256, 256, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as base:
        signatures = {}
        for crops in ("center", "ten_crop"):
            path = export.export_saved_model(model, base, crops, class_names=[f"c{i}" for i in range(1000)],
                                             mean=mean, image_size=224, resize_size=256, crops=crops)
            signatures[crops] = tf.saved_model.load(path)
        direct = tf.function(lambda x: model(x, training=False))

        def served(kind, batch):
            images = tf.constant([jpeg] * batch)
            loaded = signatures[kind]
            return lambda: loaded.signatures["serving_default"](image_bytes=images)["classes"].numpy()

        def called(batch, crops=1):
            x = tf.constant(rng.normal(0, 60, (batch * crops, 224, 224, 3)).astype(np.float32))
            return lambda: direct(x).numpy()

        print(f"AlexNet width {args.alexnet_width}, 384x512 JPEG -> 256 -> 224:")
        rows = []
        for label, kind, batch, crops in (("latency, batch 1, centre", "center", 1, 1),
                                          ("throughput, batch 32, centre", "center", 32, 1),
                                          ("throughput, batch 32, 10 crops", "ten_crop", 32, 10)):
            serve_s = median_seconds(served(kind, batch), args.repeats)
            call_s = median_seconds(called(batch, crops), args.repeats)
            print(f"  {label:32s} signature {serve_s * 1000:8.1f} ms ({batch / serve_s:7.1f} img/s), "
                  f"direct model call {call_s * 1000:8.1f} ms: signature / direct = {serve_s / call_s:5.2f}x")
            rows.append((label, serve_s, call_s))
        return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vgg_width", type=float, default=0.25)
    parser.add_argument("--alexnet_width", type=float, default=1.0)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("dense", "serving"), default=None)
    args = parser.parse_args()
    if args.only in (None, "dense"):
        dense_vs_multi_crop(args)
    if args.only in (None, "serving"):
        serving_vs_direct(args)


if __name__ == "__main__":
    main()
