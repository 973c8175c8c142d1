"""The papers' figures as uint8 image arrays, written as PNG with TensorFlow (no plotting library).

- `conv1_grid`: the conv1 kernels, one grid per tower side by side (AlexNet §6.1, Figure 3), drawn by
  `callbacks.conv1_images` (the TensorBoard callback's own drawing, so both show the same picture).
- `top5_panels`: test images, each with five bars for its five most probable labels; the bar of the
  correct label is red (AlexNet §6.1, Figure 4 left: "the probability assigned to the correct label is
  also shown with a red bar (if it happens to be in the top 5)"). The label names go in a Markdown
  file beside the PNG (`top5_markdown`).
- `fc7_model`, `nearest` and `neighbor_grid`: the training images whose last-hidden-layer (fc7,
  4096-d) feature vectors have the smallest Euclidean distance from a query's (AlexNet §6.1, Figure 4
  right), one row per query, query first.
"""

import numpy as np

WHITE, TRACK = 255, 230
RED = (220, 40, 40)
BLUE = (70, 100, 200)


def to_uint8(image) -> np.ndarray:
    """A float image in [0, 1] -> uint8 [0, 255]."""
    return np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def conv1_grid(model, scale: int = 4, layer_name: str = "conv1") -> np.ndarray:
    """The conv1 kernels as uint8 [H, W, 3], towers side by side, each pixel `scale`x`scale` (Figure 3)."""
    from callbacks.conv1_images import conv1_kernels, towers_side_by_side

    grid = to_uint8(towers_side_by_side(conv1_kernels(model, layer_name)))
    return np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)


def write_png(path: str, image) -> str:
    """Writes a uint8 [H, W, 3] array as PNG with `tf.io.encode_png`; returns `path`."""
    import tensorflow as tf

    tf.io.write_file(path, tf.io.encode_png(np.asarray(image, np.uint8)))
    return path


def tile(image, size: int) -> np.ndarray:
    """An image (0..255, any size) resized to uint8 [size, size, 3] for a grid (bilinear, antialiased)."""
    import tensorflow as tf

    resized = tf.image.resize(np.asarray(image, np.float32), (size, size), antialias=True).numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def compose(rows, gap: int = 2) -> np.ndarray:
    """Rows of equal-height uint8 images -> one image, white gaps between cells and rows (left aligned)."""
    lines = []
    for cells in rows:
        height = max(c.shape[0] for c in cells)
        parts = []
        for i, cell in enumerate(cells):
            if i:
                parts.append(np.full((height, gap, 3), WHITE, np.uint8))
            parts.append(np.pad(cell, ((0, height - cell.shape[0]), (0, 0), (0, 0)), constant_values=WHITE))
        lines.append(np.concatenate(parts, axis=1))
    width = max(line.shape[1] for line in lines)
    out = []
    for i, line in enumerate(lines):
        if i:
            out.append(np.full((gap, width, 3), WHITE, np.uint8))
        out.append(np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=WHITE))
    return np.concatenate(out, axis=0)


def bars(probabilities, classes, true_label, width: int, bar_height: int = 8, gap: int = 2) -> np.ndarray:
    """Five horizontal bars (length = probability x width); the correct label's bar is red, others blue."""
    k = len(probabilities)
    out = np.full((k * (bar_height + gap), width, 3), WHITE, np.uint8)
    for rank, (p, c) in enumerate(zip(probabilities, classes)):
        top = rank * (bar_height + gap) + gap
        out[top:top + bar_height, :] = TRACK
        length = int(round(float(np.clip(p, 0.0, 1.0)) * width))
        out[top:top + bar_height, :length] = RED if int(c) == int(true_label) else BLUE
    return out


def top5_panels(images, top_classes, top_probabilities, true_labels, size: int = 96,
                columns: int = 4) -> np.ndarray:
    """Figure 4 (left): each image as a `size` tile above the bars of its top-5 labels, `columns` a row."""
    panels = [
        np.concatenate([tile(image, size), bars(probs, classes, label, size)], axis=0)
        for image, classes, probs, label in zip(images, top_classes, top_probabilities, true_labels)
    ]
    return compose([panels[i:i + columns] for i in range(0, len(panels), columns)], gap=6)


def top5_markdown(top_classes, top_probabilities, true_labels, class_names, columns: int = 4) -> str:
    """The labels of `top5_panels`, panel by panel (row, column), the correct label in bold."""
    lines = ["| panel (row, column) | correct label | top-5 labels (probability) |", "| --- | --- | --- |"]
    for i, (classes, probs, label) in enumerate(zip(top_classes, top_probabilities, true_labels)):
        ranked = [
            (f"**{class_names[c]}**" if int(c) == int(label) else class_names[c]) + f" ({p:.3f})"
            for c, p in zip(classes, probs)
        ]
        lines.append(f"| {i // columns + 1}, {i % columns + 1} | {class_names[label]} | {'; '.join(ranked)} |")
    return "\n".join(lines) + "\n"


def fc7_model(model, layer_name: str = "fc7"):
    """A model from `model`'s input to its last hidden layer (AlexNet §6.1: the 4096-d fc7 activations)."""
    import keras

    return keras.Model(model.inputs, model.get_layer(layer_name).output, name=f"{model.name}_{layer_name}")


class Nearest:
    """The `k` database vectors nearest (Euclidean) to each query, fed database chunk by chunk.

    Keeps only the best `k` per query, so a whole training set (1.2M x 4096) never has to be in memory.
    """

    def __init__(self, queries, k: int):
        self.queries = np.asarray(queries, np.float64)
        self.k = k
        self.distances = np.full((len(self.queries), 0), np.inf)
        self.indices = np.zeros((len(self.queries), 0), np.int64)
        self.seen = 0

    def add(self, vectors) -> None:
        vectors = np.asarray(vectors, np.float64)
        squared = ((self.queries ** 2).sum(1)[:, None] - 2.0 * self.queries @ vectors.T
                   + (vectors ** 2).sum(1)[None, :])
        distances = np.concatenate([self.distances, np.sqrt(np.maximum(squared, 0.0))], axis=1)
        indices = np.concatenate(
            [self.indices, np.broadcast_to(np.arange(self.seen, self.seen + len(vectors)), squared.shape)], axis=1)
        order = np.argsort(distances, axis=1, kind="stable")[:, :self.k]
        self.distances = np.take_along_axis(distances, order, axis=1)
        self.indices = np.take_along_axis(indices, order, axis=1)
        self.seen += len(vectors)


def neighbor_grid(queries, neighbors, size: int = 64) -> np.ndarray:
    """Figure 4 (right): one row per query, the query first, then its neighbours, nearest first."""
    rows = []
    for query, found in zip(queries, neighbors):
        cells = [tile(query, size), np.full((size, 4, 3), WHITE, np.uint8)] + [tile(n, size) for n in found]
        rows.append(cells)
    return compose(rows, gap=2)
