"""Test-only writer of Caffe's files in protobuf's wire format, independent of the reader under test
(`keras_alexnet.caffemodel`): a ``.caffemodel`` of bvlc_alexnet's (or CaffeNet's) exact layer list with
random weights, in the current ``layer`` form (blob ``shape``) or the legacy V1 ``layers`` form (blob
num/channels/height/width), its ``deploy.prototxt`` (text format, for OpenCV's Caffe importer), a mean
``.binaryproto`` and a ``synset_words.txt``. Field numbers: Caffe's ``caffe.proto``."""

import numpy as np

# Caffe's layer list of bvlc_alexnet: (name, type, convolution/inner-product settings or None)
# settings: (num_output, kernel, stride, pad, group) for Convolution, (num_output,) for InnerProduct.
BVLC_ALEXNET = (
    ("conv1", "Convolution", (96, 11, 4, 0, 1)), ("relu1", "ReLU", None), ("norm1", "LRN", None),
    ("pool1", "Pooling", None),
    ("conv2", "Convolution", (256, 5, 1, 2, 2)), ("relu2", "ReLU", None), ("norm2", "LRN", None),
    ("pool2", "Pooling", None),
    ("conv3", "Convolution", (384, 3, 1, 1, 1)), ("relu3", "ReLU", None),
    ("conv4", "Convolution", (384, 3, 1, 1, 2)), ("relu4", "ReLU", None),
    ("conv5", "Convolution", (256, 3, 1, 1, 2)), ("relu5", "ReLU", None), ("pool5", "Pooling", None),
    ("fc6", "InnerProduct", (4096,)), ("relu6", "ReLU", None), ("drop6", "Dropout", None),
    ("fc7", "InnerProduct", (4096,)), ("relu7", "ReLU", None), ("drop7", "Dropout", None),
    ("fc8", "InnerProduct", (1000,)),
)
# CaffeNet (bvlc_reference_caffenet): pooling before LRN.
CAFFENET = tuple(
    {"norm1": BVLC_ALEXNET[3], "pool1": BVLC_ALEXNET[2], "norm2": BVLC_ALEXNET[7], "pool2": BVLC_ALEXNET[6]}.get(
        layer[0], layer) for layer in BVLC_ALEXNET)
V1_TYPE = {"Convolution": 4, "Data": 5, "Dropout": 6, "InnerProduct": 14, "LRN": 15, "Pooling": 17, "ReLU": 18,
           "SoftmaxWithLoss": 21}


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number, wire):
    return varint(number << 3 | wire)


def length_field(number, payload):
    return key(number, 2) + varint(len(payload)) + payload


def varint_field(number, value):
    return key(number, 0) + varint(value)


def blob(array, legacy=False):
    """BlobProto: shape (7, packed int64 dims) or legacy num/channels/height/width (1-4), data (5, packed)."""
    array = np.asarray(array, np.float32)
    if legacy:
        dims = (1,) * (4 - array.ndim) + array.shape
        head = b"".join(varint_field(number, dim) for number, dim in zip((1, 2, 3, 4), dims))
    else:
        head = length_field(7, length_field(1, b"".join(varint(d) for d in array.shape)))
    return head + length_field(5, array.astype("<f4").tobytes())


def layer(name, kind, blobs, v1=False):
    if v1:  # V1LayerParameter: name 4, type 5 (enum), blobs 6
        return (length_field(4, name.encode()) + varint_field(5, V1_TYPE[kind])
                + b"".join(length_field(6, blob(b, legacy=True)) for b in blobs))
    return (length_field(1, name.encode()) + length_field(2, kind.encode())
            + b"".join(length_field(7, blob(b)) for b in blobs))


def random_weights(layers=BVLC_ALEXNET, seed=0, width=1.0, num_classes=1000, fc8_scale=1.0, size=227):
    """{layer name: (weight, bias)} in Caffe's shapes for `layers`, He-normal (peaked output via fc8_scale).
    `width` scales every conv/FC width (not the classes), as `build_model(width=...)` does."""
    from keras_alexnet.alexnet import scaled

    rng = np.random.default_rng(seed)
    weights, channels, side = {}, 3, size
    for name, kind, settings in layers:
        if kind == "Convolution":
            out, kernel, stride, pad, group = settings
            out = scaled(out, width, 2)
            shape = (out, channels // group, kernel, kernel)
            side = (side + 2 * pad - kernel) // stride + 1
            channels = out
        elif kind == "Pooling":
            side = (side - 3) // 2 + 1
            continue
        elif kind == "InnerProduct":
            out = settings[0] if name == "fc8" and num_classes is None else (
                num_classes if name == "fc8" else scaled(settings[0], width))
            shape = (out, channels * side * side)
            channels, side = out, 1
        else:
            continue
        fan_in = int(np.prod(shape[1:]))
        scale = np.float32(np.sqrt(2.0 / fan_in) * (fc8_scale if name == "fc8" else 1.0))
        weight = rng.standard_normal(shape, dtype=np.float32) * scale
        weights[name] = (weight, rng.normal(0, 0.1, shape[0]).astype(np.float32))
    return weights


def caffemodel(path, weights, layers=BVLC_ALEXNET, v1=False):
    """NetParameter (name 1; layer 100, or V1 layers 2) with a data layer, `layers` and a loss layer, as
    a train_val net is saved by Caffe."""
    number = 2 if v1 else 100
    parts = [length_field(1, b"AlexNet"), length_field(number, layer("data", "Data", [], v1))]
    for name, kind, _ in layers:
        parts.append(length_field(number, layer(name, kind, list(weights.get(name, ())), v1)))
    parts.append(length_field(number, layer("loss", "SoftmaxWithLoss", [], v1)))
    with open(path, "wb") as f:
        for part in parts:
            f.write(part)
    return path


def deploy_prototxt(path, weights, layers=BVLC_ALEXNET, size=227):
    """The deploy net in prototxt text format, as Caffe's models/bvlc_alexnet/deploy.prototxt, with the
    widths of `weights`; output "prob" (softmax)."""
    lines = ['name: "AlexNet"', 'input: "data"', f"input_shape {{ dim: 1 dim: 3 dim: {size} dim: {size} }}"]
    bottom = "data"
    for name, kind, settings in layers:
        top = bottom if kind in ("ReLU", "Dropout") else name
        params = ""
        if kind == "Convolution":
            _, kernel, stride, pad, group = settings
            params = (f"convolution_param {{ num_output: {weights[name][0].shape[0]} kernel_size: {kernel} "
                      f"stride: {stride} pad: {pad} group: {group} }}")
        elif kind == "InnerProduct":
            params = f"inner_product_param {{ num_output: {weights[name][0].shape[0]} }}"
        elif kind == "LRN":
            params = "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }"
        elif kind == "Pooling":
            params = "pooling_param { pool: MAX kernel_size: 3 stride: 2 }"
        elif kind == "Dropout":
            params = "dropout_param { dropout_ratio: 0.5 }"
        lines.append(f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{top}" {params} }}')
        bottom = top
    lines.append(f'layer {{ name: "prob" type: "Softmax" bottom: "{bottom}" top: "prob" }}')
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def mean_binaryproto(path, mean_bgr_chw, legacy=True):
    """A BlobProto holding a 1x3xHxW BGR mean image (Caffe's ilsvrc_2012_mean.binaryproto layout)."""
    with open(path, "wb") as f:
        f.write(blob(np.asarray(mean_bgr_chw, np.float32)[None], legacy=legacy))
    return path


def synset_words(path, num_classes=1000):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(num_classes):
            f.write(f"n{10000000 + i:08d} class {i}, thing {i}\n")
    return path
