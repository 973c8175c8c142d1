"""Test-time views of an image: rescaling, the centre crop, AlexNet's 10 crops, VGG's 50-crop grid.

Pure TensorFlow (no Python-side state, no py_function), so the same functions serve the tf.data
evaluation pipelines and a SavedModel serving signature working on decoded images. Images are
`[H, W, C]` or a batch `[B, H, W, C]` of equal-sized images, on the 0..255 scale until
`subtract_mean`; every function returns float32 except the crops, which keep the input dtype.

- AlexNet §4.1: "At test time, the network makes a prediction by extracting five 224 × 224 patches
  (the four corner patches and the center patch) as well as their horizontal reflections (hence ten
  patches in all)" from the 256x256 image (AlexNet §2: shorter side rescaled to 256, central
  256x256 patch).
- VGG §3.2: the test image is isotropically rescaled to a smallest side Q (the test scale); dense
  evaluation feeds the whole rescaled image; multi-crop evaluation uses "50 crops per scale (5 × 5
  regular grid with 2 flips)".

`protocol_views` makes the views of a protocol of `pipelines.eval_protocols` (the tf.data evaluation
pipeline and the serving signature call it); `crop_probabilities` averages a model's softmax over an
image's crops (the evaluation engine, hence the 10-crop callback, and the serving signature).
"""

import tensorflow as tf

# Order of `corner_and_center_crops`: the five patches, then their mirrors in the same order (index i + 5 is the
# horizontal reflection of index i).
TEN_CROP_ORDER = (
    "top_left",
    "top_right",
    "bottom_left",
    "bottom_right",
    "center",
    "top_left_flipped",
    "top_right_flipped",
    "bottom_left_flipped",
    "bottom_right_flipped",
    "center_flipped",
)


def _height_width(image):
    shape = tf.shape(image)
    return shape[-3], shape[-2]


def _pair(size):
    if isinstance(size, (tuple, list)):
        return size[0], size[1]
    return size, size


def shorter_side_shape(height, width, size):
    """The (height, width) that makes the shorter side `size` with the aspect ratio kept (rounded)."""
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    ratio = tf.cast(size, tf.float32) / tf.minimum(height, width)
    new_height = tf.cast(tf.floor(height * ratio + 0.5), tf.int32)
    new_width = tf.cast(tf.floor(width * ratio + 0.5), tf.int32)
    size = tf.cast(size, tf.int32)
    # The shorter side is exactly `size` even when rounding would say otherwise.
    new_height = tf.where(height <= width, size, tf.maximum(new_height, size))
    new_width = tf.where(width < height, size, tf.maximum(new_width, size))
    return new_height, new_width


def resize_shorter_side(image, size, antialias=True):
    """Isotropic rescaling so the shorter side is `size` (AlexNet §2, VGG §3.2's test scale Q).

    Bilinear, antialiased when shrinking (as PIL does); an image already at that size is only cast.
    Returns float32.
    """
    image = tf.convert_to_tensor(image)
    height, width = _height_width(image)
    new_height, new_width = shorter_side_shape(height, width, size)
    unchanged = tf.logical_and(tf.equal(height, new_height), tf.equal(width, new_width))
    return tf.cond(
        unchanged,
        lambda: tf.cast(image, tf.float32),
        lambda: tf.image.resize(image, tf.stack([new_height, new_width]), method="bilinear", antialias=antialias),
    )


def crop(image, offset_y, offset_x, size):
    """The `size` (int or (h, w)) window at (offset_y, offset_x) of `[..., H, W, C]` images."""
    crop_height, crop_width = _pair(size)
    return tf.image.crop_to_bounding_box(image, offset_y, offset_x, crop_height, crop_width)


def center_crop(image, size):
    """The central `size` (int or (h, w)) window (AlexNet §2: central patch; single-crop testing)."""
    height, width = _height_width(image)
    crop_height, crop_width = _pair(size)
    return crop(image, (height - crop_height) // 2, (width - crop_width) // 2, (crop_height, crop_width))


def center_square(image):
    """The central min(H, W) x min(H, W) square (AlexNet §2: "cropped out the central 256×256 patch")."""
    height, width = _height_width(image)
    side = tf.minimum(height, width)
    return tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2, side, side)


def flip_left_right(image):
    """Horizontal reflection of `[..., H, W, C]` (any rank >= 3)."""
    return tf.reverse(image, axis=[-2])


def corner_and_center_crops(image, size, flip=True):
    """AlexNet §4.1's test patches: `[H, W, C]` -> `[5 or 10, s, s, C]` (batch: `[B, K, s, s, C]`).

    Order (`TEN_CROP_ORDER`): top-left, top-right, bottom-left, bottom-right, centre, then, with
    `flip`, the horizontal reflections of those five in the same order.
    """
    height, width = _height_width(image)
    bottom, right = height - size, width - size
    offsets = ((0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2))
    patches = tf.stack([crop(image, y, x, size) for y, x in offsets], axis=-4)
    return tf.concat([patches, flip_left_right(patches)], axis=-4) if flip else patches


def grid_offsets(length, size, grid):
    """`grid` evenly spaced crop offsets from 0 to length - size inclusive (rounded to pixels)."""
    span = tf.cast(length - size, tf.float32)
    steps = tf.range(grid, dtype=tf.float32) / float(max(grid - 1, 1))
    return tf.cast(tf.floor(steps * span + 0.5), tf.int32)


def grid_crops(image, size, grid=5, flip=True):
    """VGG §3.2 multi-crop: a `grid` x `grid` regular grid of `size` crops, plus their mirrors.

    `[H, W, C]` -> `[grid*grid*(2 if flip else 1), s, s, C]` (batch: `[B, n, s, s, C]`). Crop k < grid²
    has row k // grid and column k % grid (offsets from `grid_offsets`: first and last crops touch the
    image borders); crop k + grid² is the horizontal reflection of crop k.
    """
    height, width = _height_width(image)
    ys = grid_offsets(height, size, grid)
    xs = grid_offsets(width, size, grid)
    patches = tf.stack([crop(image, ys[i], xs[j], size) for i in range(grid) for j in range(grid)], axis=-4)
    if flip:
        patches = tf.concat([patches, flip_left_right(patches)], axis=-4)
    return patches


def protocol_views(protocol, image, size, subtract=None):
    """The views `protocol` (a `pipelines.eval_protocols.Protocol`) makes of `image` ([H, W, C] rescaled
    to the test scale Q, or a batch of equal-sized ones), `subtract` (the mean subtraction, None: none)
    applied to the frame before cropping:

    - dense: the whole image `[H, W, C]` (VGG §3.2);
    - one crop without flip: `[s, s, C]` (a batch of crops is a batch of images);
    - otherwise `[K, s, s, C]`, K = `protocol.views`, the reflections after the crops (`grid_crops`,
      `corner_and_center_crops` give the orders).
    """
    from pipelines import eval_protocols

    subtract = subtract or (lambda frame: tf.cast(frame, tf.float32))
    if protocol.dense:
        return subtract(image)
    frame = center_square(image) if protocol.frame == eval_protocols.SQUARE else image
    if protocol.positions == eval_protocols.CENTER:
        view = subtract(center_crop(frame, size))
        if not protocol.flip:
            return view
        single = tf.expand_dims(view, -4)
        return tf.concat([single, flip_left_right(single)], axis=-4)
    if protocol.positions == eval_protocols.CORNERS_AND_CENTER:
        return corner_and_center_crops(subtract(frame), size, flip=protocol.flip)
    return grid_crops(subtract(frame), size, grid=protocol.grid, flip=protocol.flip)


def subtract_mean(image, mean):
    """Mean subtraction: `mean` is a colour (3,) (VGG §2.1) or a mean image (Hm, Wm, 3) (AlexNet §2).

    A mean image larger than the image is centre-cropped to it, so `subtract_mean(center_crop(x, 224),
    mean_256)` equals `center_crop(subtract_mean(x, mean_256), 224)`. Returns float32.
    """
    image = tf.cast(image, tf.float32)
    mean = tf.cast(tf.convert_to_tensor(mean), tf.float32)
    if mean.shape.rank == 3:
        height, width = _height_width(image)
        mean = center_crop(mean, (height, width))
    return image - mean


def crop_probabilities(predict, views):
    """Softmax averaged over the crops of each image (AlexNet §4.1: "averaging the predictions made by the
    network's softmax layer on the ten patches"; VGG §3.2's multi-crop): [B, K, h, w, 3] (or [B, h, w, 3]) -> [B, C]."""
    views = tf.convert_to_tensor(views)
    if views.shape.rank == 4:
        return tf.cast(predict(views), tf.float32)
    shape = tf.shape(views)
    flat = tf.reshape(views, tf.concat([[shape[0] * shape[1]], shape[2:]], axis=0))
    probabilities = tf.cast(predict(flat), tf.float32)
    return tf.reduce_mean(tf.reshape(probabilities, [shape[0], shape[1], -1]), axis=1)
