"""The papers' figures as uint8 image arrays with their labels drawn in, written as PNG.

- `conv1_grid` / `conv1_figure`: the conv1 kernels, one grid per tower side by side under a "Tower 1" /
  "Tower 2" title (AlexNet §6.1, Figure 3: "the kernels on GPU 1 are largely color-agnostic, while the
  kernels on GPU 2 are largely color-specific"), enlarged to at least `min_width` pixels; the
  TensorBoard callback `callbacks.conv1_images` draws the same picture. `conv1_kernels` splits conv1's
  kernel by tower; `kernel_grid` scales each kernel to [0, 1] on its own (as such figures are drawn)
  and lays them out in a grid; `towers_side_by_side` places the towers' grids left to right.
- `top5_panels`: test images, each with its verdict (correct / wrong), its correct label and its five
  most probable labels with their probabilities and bars written under it; the correct label's bar and
  name are red (AlexNet §6.1, Figure 4 left: "the probability assigned to the correct label is also
  shown with a red bar (if it happens to be in the top 5)"). Like the paper's figure it shows successes
  and failures (`successes_and_failures`). `top5_markdown` lists the same as text.
- `fc7_model`, `Nearest` and `neighbor_grid`: the training images whose last-hidden-layer (fc7,
  4096-d) feature vectors have the smallest Euclidean distance from a query's (AlexNet §6.1, Figure 4
  right), one row per query under a header marking the query column, each image captioned (e.g. its
  class name, and each neighbour's distance), under a title.
- `augmented_grid`: training inputs as the network sees them (AlexNet §4.1), before mean subtraction,
  titled with the augmentations the run applies.

Text is rendered by Pillow's built-in scalable font (`ImageFont.load_default(size)`, Pillow >= 10.1),
so no font file has to be found on the machine.
"""

import math

import numpy as np

WHITE, TRACK = 255, 230
RED = (220, 40, 40)
BLUE = (70, 100, 200)
BLACK = (0, 0, 0)
GREY = (90, 90, 90)
GREEN = (20, 130, 50)  # a top-5 panel whose most probable label is the correct one
ORANGE = (200, 100, 0)  # one whose most probable label is wrong


def to_uint8(image) -> np.ndarray:
    """A float image in [0, 1] -> uint8 [0, 255]."""
    return np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def conv1_kernels(model, layer_name="conv1"):
    """conv1's kernels [kh, kw, in, out], one array per tower.

    In AlexNet conv1 is one convolution whose first half of output maps feeds tower 1 and the second
    half tower 2 (conv2 is split by input channels, `keras_alexnet.towers.TowerConv2D`); the kernel
    is split the same way when the model has such a towered conv2. A layer holding one kernel per
    tower gives them in the order of their variable paths.
    """
    import keras

    layer = model.get_layer(layer_name)
    weights = sorted((w for w in layer.weights if len(w.shape) == 4), key=lambda w: w.path)
    if not weights:
        raise ValueError(f"layer '{layer_name}' holds no 4-D kernel")
    kernels = [np.asarray(keras.ops.convert_to_numpy(w)) for w in weights]
    if len(kernels) == 1:
        groups = _towers_after(model, layer_name)
        if groups > 1 and kernels[0].shape[-1] % groups == 0:
            return np.split(kernels[0], groups, axis=-1)
    return kernels


def _towers_after(model, layer_name):
    """The tower count of the towered layer following `layer_name` (conv1 -> conv2), else 1."""
    following = {"conv1": "conv2"}.get(layer_name)
    try:
        return int(getattr(model.get_layer(following), "groups", 1)) if following else 1
    except ValueError:
        return 1


def kernel_grid(kernel, columns=None, gap=1):
    """[kh, kw, in, out] -> one image [H, W, 3] in [0, 1]: each kernel min-max scaled on its own."""
    kh, kw, cin, n = kernel.shape
    k = np.transpose(kernel, (3, 0, 1, 2)).astype(np.float32)  # [n, kh, kw, cin]
    if cin == 1:
        k = np.repeat(k, 3, axis=-1)
    elif cin != 3:
        k = k[..., :3] if cin > 3 else np.concatenate([k, np.repeat(k[..., -1:], 3 - cin, -1)], -1)
    lo = k.min(axis=(1, 2, 3), keepdims=True)
    hi = k.max(axis=(1, 2, 3), keepdims=True)
    k = (k - lo) / np.maximum(hi - lo, 1e-12)
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.ones((rows * (kh + gap) - gap, columns * (kw + gap) - gap, 3), np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (kh + gap):r * (kh + gap) + kh, c * (kw + gap):c * (kw + gap) + kw] = k[i]
    return grid


def towers_side_by_side(kernels, gap=3):
    """One grid per tower, placed left to right with a white gap: [H, W, 3] in [0, 1]."""
    grids = [kernel_grid(k) for k in kernels]
    height = max(g.shape[0] for g in grids)
    padded = [np.pad(g, ((0, height - g.shape[0]), (0, 0), (0, 0)), constant_values=1.0) for g in grids]
    parts = []
    for i, g in enumerate(padded):
        if i:
            parts.append(np.ones((height, gap, 3), np.float32))
        parts.append(g)
    return np.concatenate(parts, axis=1)


def conv1_grid(model, scale: int = 1, layer_name: str = "conv1", min_width: int = 600) -> np.ndarray:
    """The model's conv1 kernels as a titled uint8 figure (`conv1_figure`), Figure 3."""
    return conv1_figure(conv1_kernels(model, layer_name), scale, min_width)


def conv1_figure(kernels, scale: int = 1, min_width: int = 600, gap: int = 3) -> np.ndarray:
    """Kernels [kh, kw, in, out] per tower -> uint8 [H, W, 3]: one grid per tower side by side, each
    pixel drawn as an s x s block with s >= `scale` and the width >= `min_width`, under a title strip
    naming the towers ("Tower 1", "Tower 2"; "conv1" for a net with one)."""
    widths = [kernel_grid(k).shape[1] for k in kernels]
    total = sum(widths) + gap * (len(widths) - 1)
    scale = max(int(scale), math.ceil(min_width / total))
    grid = to_uint8(towers_side_by_side(kernels, gap=gap))
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    titles = [f"Tower {i + 1}" for i in range(len(kernels))] if len(kernels) > 1 else ["conv1"]
    counts = [f"{k.shape[-1]} kernels {k.shape[0]}x{k.shape[1]}x{k.shape[2]}" for k in kernels]
    size = max(12, min(28, grid.shape[1] // 36))
    strip = np.full((2 * size + 12, grid.shape[1], 3), WHITE, np.uint8)
    left = 0
    for title, count, width in zip(titles, counts, widths):
        centre = (left + width / 2) * scale
        strip = draw_text(strip, title, (centre, 3), size, anchor="ma")
        strip = draw_text(strip, count, (centre, size + 7), max(10, size * 3 // 4), colour=GREY, anchor="ma")
        left += width + gap
    return np.concatenate([strip, grid], axis=0)


def font(size: int):
    """Pillow's built-in scalable font at `size` pixels."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def fit_text(text: str, size: int, width: int) -> str:
    """`text`, cut with an ellipsis so that it is at most `width` pixels wide at `size`."""
    face = font(size)
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..." if text else ""


def wrap_text(text: str, size: int, width: int) -> list:
    """`text` broken at spaces into lines at most `width` pixels wide at `size` (a word wider than that
    is cut by `fit_text`)."""
    face, lines = font(size), []
    for word in text.split(" "):
        if lines and face.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(fit_text(word, size, width))
    return lines


def draw_text(image, text, position, size, colour=BLACK, anchor="la") -> np.ndarray:
    """`image` (uint8 [H, W, 3]) with `text` drawn at `position` (x, y) by Pillow; `anchor` as Pillow's
    ("la": left-ascender, "ma": middle, "ra": right)."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(np.asarray(image, np.uint8))
    ImageDraw.Draw(canvas).text(position, text, fill=tuple(colour), font=font(size), anchor=anchor)
    return np.asarray(canvas)


def caption(lines, width: int, size: int = 11, colour=BLACK) -> np.ndarray:
    """Lines of text (black unless `colour`) under a picture: uint8 [len(lines) * (size + 3) + 2, width, 3],
    each line fitted to `width`."""
    strip = np.full((len(lines) * (size + 3) + 2, width, 3), WHITE, np.uint8)
    for i, line in enumerate(lines):
        strip = draw_text(strip, fit_text(line, size, width - 2), (1, 1 + i * (size + 3)), size, colour)
    return strip


def caption_size(width: int) -> int:
    """A font size that fits about 14 characters into `width` pixels, between 9 and 14."""
    return int(np.clip(width // 9, 9, 14))


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


def top5_verdict(classes, true_label) -> str:
    """Whether a top-5 panel is a success or a failure: "correct" (the most probable label is the
    correct one), "wrong, in top 5" or "wrong, not in top 5"."""
    ranked = [int(c) for c in classes]
    if ranked[0] == int(true_label):
        return "correct"
    return "wrong, in top 5" if int(true_label) in ranked else "wrong, not in top 5"


def top5_caption(probabilities, classes, true_label, class_names, width: int) -> np.ndarray:
    """Under one image of Figure 4 (left): the panel's `top5_verdict` (green when correct, orange when
    wrong), the correct label, then for each of the five most probable labels its name and probability
    above a bar as long as the probability; the correct label's name and bar are red (the bar of `bars`)."""
    size = caption_size(width)
    verdict = top5_verdict(classes, true_label)
    parts = [caption([verdict], width, size, GREEN if verdict == "correct" else ORANGE),
             caption([class_names[int(true_label)]], width, size + 1)]
    for p, c in zip(probabilities, classes):
        correct = int(c) == int(true_label)
        value = f"{float(p):.2f}"
        name_width = width - 4 - int(font(size).getlength(value + " "))
        line = np.full((size + 3, width, 3), WHITE, np.uint8)
        line = draw_text(line, fit_text(class_names[int(c)], size, name_width), (1, 1), size,
                         RED if correct else BLACK)
        line = draw_text(line, value, (width - 2, 1), size, RED if correct else GREY, anchor="ra")
        parts += [line, bars([p], [c], true_label, width, bar_height=4, gap=1)]
    return np.concatenate(parts, axis=0)


def successes_and_failures(top1_correct, count: int) -> list:
    """Indices of `count` panels, successes and failures alternating (a success first, in the order
    given), as AlexNet Figure 4 (left) shows both; when one kind runs out the other fills the rest."""
    correct = [i for i, ok in enumerate(top1_correct) if ok]
    wrong = [i for i, ok in enumerate(top1_correct) if not ok]
    chosen = []
    while len(chosen) < count and (correct or wrong):
        for kind in (correct, wrong):
            if kind and len(chosen) < count:
                chosen.append(kind.pop(0))
    return chosen


def top5_panels(images, top_classes, top_probabilities, true_labels, size: int = 96,
                columns: int = 4, class_names=None) -> np.ndarray:
    """Figure 4 (left): each image as a `size` tile above its `top5_caption`, `columns` panels a row.

    `class_names[i]` names class i (default: the class number)."""
    if class_names is None:
        count = int(max(np.max(top_classes), np.max(true_labels))) + 1
        class_names = [f"class {i}" for i in range(count)]
    panels = [
        np.concatenate([tile(image, size), top5_caption(probs, classes, label, class_names, size)], axis=0)
        for image, classes, probs, label in zip(images, top_classes, top_probabilities, true_labels)
    ]
    return compose([panels[i:i + columns] for i in range(0, len(panels), columns)], gap=8)


def top5_markdown(top_classes, top_probabilities, true_labels, class_names, columns: int = 4) -> str:
    """The labels of `top5_panels`, panel by panel (row, column), with its verdict; the correct label in bold."""
    lines = ["| panel (row, column) | top-1 | correct label | top-5 labels (probability) |",
             "| --- | --- | --- | --- |"]
    for i, (classes, probs, label) in enumerate(zip(top_classes, top_probabilities, true_labels)):
        ranked = [
            (f"**{class_names[c]}**" if int(c) == int(label) else class_names[c]) + f" ({p:.3f})"
            for c, p in zip(classes, probs)
        ]
        lines.append(f"| {i // columns + 1}, {i % columns + 1} | {top5_verdict(classes, label)} | "
                     f"{class_names[label]} | {'; '.join(ranked)} |")
    return "\n".join(lines) + "\n"


def fc7_model(model, layer_name: str = "fc7"):
    """A model from `model`'s input to its last hidden layer (AlexNet §6.1: the 4096-d fc7 activations)."""
    import keras

    return keras.Model(model.inputs, model.get_layer(layer_name).output, name=f"{model.name}_{layer_name}")


def _vectors(features) -> np.ndarray:
    """[N, ...] features as [N, D] float64 vectors: a conv layer's feature maps flattened, so the distance
    is the Euclidean distance of the whole activation tensors."""
    features = np.asarray(features, np.float64)
    return features.reshape(len(features), -1)


class Nearest:
    """The `k` database vectors nearest (Euclidean) to each query, fed database chunk by chunk; feature
    maps ([N, h, w, c], a conv layer's) are compared as flattened vectors.

    Keeps only the best `k` per query, so a whole training set (1.2M x 4096) never has to be in memory;
    with each chunk may come one item per vector (its picture and label, say), kept while the vector is
    among the nearest (`item`), so the database is read once. `progress` (a
    `keras_alexnet.progress.ProgressLine` counting images) is told the count searched after each chunk;
    `close()` ends it.
    """

    def __init__(self, queries, k: int, progress=None):
        self.queries = _vectors(queries)
        self.k = k
        self.progress = progress
        self.distances = np.full((len(self.queries), 0), np.inf)
        self.indices = np.zeros((len(self.queries), 0), np.int64)
        self.seen = 0
        self._items = {}

    def add(self, vectors, items=None) -> None:
        """Searches `vectors` (the next database rows); `items`: one per vector, or None."""
        vectors = _vectors(vectors)
        squared = ((self.queries ** 2).sum(1)[:, None] - 2.0 * self.queries @ vectors.T
                   + (vectors ** 2).sum(1)[None, :])
        distances = np.concatenate([self.distances, np.sqrt(np.maximum(squared, 0.0))], axis=1)
        indices = np.concatenate(
            [self.indices, np.broadcast_to(np.arange(self.seen, self.seen + len(vectors)), squared.shape)], axis=1)
        order = np.argsort(distances, axis=1, kind="stable")[:, :self.k]
        self.distances = np.take_along_axis(distances, order, axis=1)
        self.indices = np.take_along_axis(indices, order, axis=1)
        if items is not None:
            kept = {int(i) for i in self.indices.ravel()}
            self._items = {i: item for i, item in self._items.items() if i in kept}
            self._items.update({i: items[i - self.seen] for i in kept if i >= self.seen})
        self.seen += len(vectors)
        if self.progress is not None:
            self.progress.update(self.seen)

    def item(self, index: int):
        """The item given with database row `index`, one of the nearest found."""
        return self._items[int(index)]

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()


def neighbor_grid(queries, neighbors, size: int = 64, query_captions=None, neighbor_captions=None,
                  distances=None, title=()) -> np.ndarray:
    """Figure 4 (right): one row per query, the query first, then its neighbours, nearest first.

    The query column is marked: "query" (blue) over it and a blue rule after it; the rank (1 = nearest)
    heads each neighbour column. With captions (a string per query, shown in blue; a list of strings
    per row of neighbours, e.g. class names) each image has its caption under it; with `distances` (a
    list per row) each neighbour also its distance from the query. `title`: lines on top (each wrapped
    to the width)."""
    text = caption_size(size)

    def cell(image, lines, colour=BLACK):
        picture = tile(image, size)
        return picture if not lines else np.concatenate([picture, caption(lines, size, text, colour)], axis=0)

    def rule(height):
        out = np.full((height, 4, 3), WHITE, np.uint8)
        out[:, 1:3] = BLUE
        return out

    count = max(len(found) for found in neighbors)
    header = caption(["query"], size, text, BLUE)
    rows = [[header, rule(header.shape[0])] + [caption([f"{rank}"], size, text, GREY) for rank in range(1, count + 1)]]
    for i, (query, found) in enumerate(zip(queries, neighbors)):
        lines = [cell(neighbour, ([neighbor_captions[i][j]] if neighbor_captions is not None else [])
                      + ([f"d = {float(distances[i][j]):.2f}"] if distances is not None else []))
                 for j, neighbour in enumerate(found)]
        first = cell(query, [query_captions[i]] if query_captions is not None else [], BLUE)
        height = max([first.shape[0]] + [c.shape[0] for c in lines])
        rows.append([first, rule(height)] + lines)
    grid = compose(rows, gap=2)
    if not title:
        return grid
    size_title = max(12, min(16, grid.shape[1] // 32))
    wrapped = [part for line in title for part in wrap_text(line, size_title, grid.shape[1] - 2)]
    return np.concatenate([caption(wrapped, grid.shape[1], size_title), grid], axis=0)


def augmented_grid(images, columns: int = 8, size: int = 96, applied=()) -> np.ndarray:
    """Training inputs as the network gets them (AlexNet §4.1), on the 0..255 scale before mean
    subtraction (values outside it, which colour jitter can produce, are clipped for display): uint8 grid
    of `size` tiles, `columns` a row, under a title line naming the augmentations `applied` (words, e.g.
    `pipelines.preview.augmentations`; none named when empty)."""
    images = [np.clip(np.asarray(image, np.float32), 0.0, 255.0) for image in images]
    cells = [tile(image, size) for image in images]
    grid = compose([cells[i:i + columns] for i in range(0, len(cells), columns)], gap=2)
    title = f"{len(cells)} training inputs" + (f" ({', '.join(applied)})" if applied else "") + \
        ", before mean subtraction"
    size = max(11, min(16, grid.shape[1] // 50))
    return np.concatenate([caption(wrap_text(title, size, grid.shape[1] - 2), grid.shape[1], size), grid], axis=0)
