"""A model's layer table: layer, kind, feature-map size, parameters (AlexNet §3.5 / Fig. 2, VGG Table 1-2).

Plain text without Keras' box drawing, so it reads the same in a terminal, a log or a Markdown code block:

    layer      kind            feature map   params       detail
    conv1      Conv2D          55x55x96      34,944       96@11x11/4 relu
    conv2      TowerConv2D     27x27x256     307,456      2 towers x 128@5x5/1 relu
    ...
"""

import keras

from keras_alexnet.dense_eval import DenseAsConv
from keras_alexnet.lrn import LocalResponseNormalization
from keras_alexnet.towers import TowerConv2D

_HEADER = ("layer", "kind", "feature map", "params", "detail")


def _pair(values):
    values = tuple(values) if isinstance(values, (tuple, list)) else (values, values)
    return "x".join(str(v) for v in values)


def _activation(layer):
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None) if activation is not None else None
    return "" if name in (None, "linear") else f" {name}"


def _detail(layer) -> str:
    if isinstance(layer, TowerConv2D):
        tower = layer.towers[0]
        return (
            f"{layer.groups} towers x {tower.filters}@{_pair(tower.kernel_size)}/{tower.strides[0]}"
            f"{_activation(layer)}"
        )
    if isinstance(layer, keras.layers.Conv2D):
        return f"{layer.filters}@{_pair(layer.kernel_size)}/{layer.strides[0]}{_activation(layer)}"
    if isinstance(layer, LocalResponseNormalization):
        return f"n={layer.size} k={layer.k:g} alpha={layer.alpha:g} beta={layer.beta:g} ({layer.convention})"
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return f"{_pair(layer.pool_size)}/{layer.strides[0]}"
    if isinstance(layer, keras.layers.ZeroPadding2D):
        return f"pad {layer.padding[0][0]}"
    if isinstance(layer, DenseAsConv):
        return f"{layer.dense.name} as {layer.dense.units}@{_pair(layer.window)}/1{_activation(layer.dense)}"
    if isinstance(layer, keras.layers.Dense):
        return f"{layer.units}{_activation(layer)}"
    if isinstance(layer, keras.layers.Dropout):
        return f"rate {layer.rate:g}"
    if isinstance(layer, keras.layers.Activation):
        return f"{layer.activation.__name__} ({layer.dtype_policy.compute_dtype})"
    return ""


def _feature_map(shape) -> str:
    return "x".join("?" if side is None else str(side) for side in tuple(shape)[1:])


def _outputs_in(model):
    """Each layer's output in *this* model: a layer shared with another model (as the dense-evaluation net
    shares the original's layers) has one node per model, and ``layer.output`` is only its first."""
    by_layer = {}
    for nodes in getattr(model, "_nodes_by_depth", {}).values():
        for node in nodes:
            by_layer[id(node.operation)] = node.outputs
    return by_layer


def layer_rows(model: keras.Model) -> list:
    """One (layer, kind, feature map, params, detail) tuple of strings per layer, in order."""
    rows = []
    outputs = _outputs_in(model)
    for layer in model.layers:
        output = outputs.get(id(layer), layer.output)
        shapes = [t.shape for t in keras.tree.flatten(output)]
        feature_map = ", ".join(_feature_map(shape) for shape in shapes)
        rows.append((layer.name, type(layer).__name__, feature_map, f"{layer.count_params():,}", _detail(layer)))
    return rows


def format_summary(model: keras.Model) -> str:
    """The layer table followed by the parameter totals. [AlexNet §3.5, VGG Table 2]"""
    rows = [_HEADER] + layer_rows(model)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]

    def line(row):
        cells = [cell.rjust(widths[i]) if i == 3 else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    total = model.count_params()
    input_shape = _feature_map(model.input.shape)
    lines = [f"{model.name}: input {input_shape}", line(rows[0]), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in rows[1:]]
    lines += ["", f"total parameters: {total:,} (trainable {trainable:,}, {total * 4 / 2**20:.1f} MiB as float32)"]
    return "\n".join(lines)
