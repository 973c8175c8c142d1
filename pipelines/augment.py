"""Training-time augmentation: random crops, flips, PCA colour jitter, VGG scale jitter.

Every random draw is stateless (`tf.random.stateless_*`) from a per-image seed of shape [2], which the
input pipeline takes from a seeded `tf.data.Dataset.random` stream: the pipeline is reproducible in
deterministic mode, and each image gets fresh draws every time it is used (AlexNet §4.1: "Each α_i is
drawn only once for all the pixels of a particular training image until that image is used for
training again, at which point it is redrawn").

Crops are planned on the stored image's size before decoding (`crop_window`), so a JPEG is decoded
with `tf.image.decode_and_crop_jpeg` and only the window is ever materialised:

- AlexNet §4.1 / §2: the image rescaled so its shorter side is 256 and centre-cropped to 256x256,
  then a random 224x224 patch. With images stored at 256x256 (the "alexnet" policy) the window is
  exactly the 224x224 patch; otherwise it is the equivalent window of the stored image, resized to
  224x224 after decoding.
- VGG §3.1: the image isotropically rescaled to a training scale S (fixed, or S ~ U[Smin, Smax] per
  image for scale jittering), then a random 224x224 crop anywhere in it. The window is the
  224·min(H, W)/S square of the stored image, resized to 224x224 (equal to rescaling the whole image
  and cropping, up to the rounding of the window to whole pixels).
"""

import tensorflow as tf

from pipelines import eval_crops


def split_seed(seed, num):
    """`num` independent stateless seeds (rows of a [num, 2] tensor) from one [2] seed."""
    return tf.random.experimental.stateless_split(seed, num=num)


def sample_scale(scale_jitter, seed):
    """VGG §3.1's training scale S: a fixed int, or S ~ U[Smin, Smax] (integers, both ends included)."""
    if isinstance(scale_jitter, (tuple, list)):
        low, high = int(scale_jitter[0]), int(scale_jitter[1])
        return tf.random.stateless_uniform([], seed, minval=low, maxval=high + 1, dtype=tf.int32)
    return tf.constant(int(scale_jitter), tf.int32)


def crop_window(height, width, scale, crop_size, seed, center_square, random=True):
    """Plans a crop of the image rescaled to shorter side `scale`, in stored-image pixels.

    `center_square` (AlexNet §2): the rescaled image is first centre-cropped to scale x scale and the
    crop lies in that square; otherwise (VGG §3.1) anywhere in the rescaled image. `random=False`
    takes the central crop instead of a uniformly random one.

    Returns `(offset_y, offset_x, window, frame_y, frame_x)` (int32 scalars): the square window of the
    stored image (its top-left corner and side) that becomes the crop once resized to crop_size, and
    the crop's top-left corner in the rescaled frame (the scale x scale square when `center_square`),
    where a mean image of that frame lines up with it.
    """
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    scale = tf.cast(scale, tf.int32)
    shorter = tf.minimum(height, width)
    ratio = tf.cast(scale, tf.float32) / tf.cast(shorter, tf.float32)  # rescaled = stored * ratio
    window = tf.cast(tf.floor(crop_size / ratio + 0.5), tf.int32)
    window = tf.clip_by_value(window, 1, shorter)
    if center_square:
        frame_height = frame_width = scale
        origin_y, origin_x = (height - shorter) // 2, (width - shorter) // 2
        region_height = region_width = shorter
    else:
        frame_height, frame_width = eval_crops.shorter_side_shape(height, width, scale)
        origin_y = origin_x = tf.constant(0, tf.int32)
        region_height, region_width = height, width
    span_y = tf.maximum(frame_height - crop_size, 0)
    span_x = tf.maximum(frame_width - crop_size, 0)
    if random:
        uniform = tf.random.stateless_uniform([2], seed)
        frame_y = tf.minimum(tf.cast(uniform[0] * tf.cast(span_y + 1, tf.float32), tf.int32), span_y)
        frame_x = tf.minimum(tf.cast(uniform[1] * tf.cast(span_x + 1, tf.float32), tf.int32), span_x)
    else:
        frame_y, frame_x = span_y // 2, span_x // 2
    offset_y = origin_y + tf.cast(tf.floor(tf.cast(frame_y, tf.float32) / ratio + 0.5), tf.int32)
    offset_x = origin_x + tf.cast(tf.floor(tf.cast(frame_x, tf.float32) / ratio + 0.5), tf.int32)
    offset_y = tf.clip_by_value(offset_y, origin_y, origin_y + region_height - window)
    offset_x = tf.clip_by_value(offset_x, origin_x, origin_x + region_width - window)
    return offset_y, offset_x, window, frame_y, frame_x


def decode_window(encoded, plan):
    """Decodes only the window that `plan(height, width)` (returning `crop_window`'s tuple) chooses.

    JPEG: the header gives the size, then `tf.image.decode_and_crop_jpeg` decodes the window alone.
    Other formats (PNG in TFDS datasets, for instance): full decode, then slicing. Grey images become
    RGB. The JPEG window equals the slice of the full decode except possibly its last column, where
    libjpeg-turbo upsamples chroma from the window alone (a few levels on natural images).
    Returns `(window uint8 [w, w, 3], frame_y, frame_x)`. Raises on undecodable bytes (the pipeline
    drops and counts those records).
    """

    def jpeg():
        shape = tf.image.extract_jpeg_shape(encoded)
        offset_y, offset_x, window, frame_y, frame_x = plan(shape[0], shape[1])
        crop = tf.stack([offset_y, offset_x, window, window])
        return tf.image.decode_and_crop_jpeg(encoded, crop, channels=3), frame_y, frame_x

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        shape = tf.shape(image)
        offset_y, offset_x, window, frame_y, frame_x = plan(shape[0], shape[1])
        return tf.slice(image, tf.stack([offset_y, offset_x, 0]), tf.stack([window, window, 3])), frame_y, frame_x

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def resize_window(window, crop_size, dtype=tf.float32):
    """The decoded window as a crop_size x crop_size crop, resized (bilinear, antialiased) only when it
    differs. `dtype` uint8 keeps 8-bit pixels (resized values rounded, as a stored image would be),
    which makes batching 4x cheaper than float32."""
    window = tf.convert_to_tensor(window)
    shape = tf.shape(window)
    same = tf.logical_and(tf.equal(shape[0], crop_size), tf.equal(shape[1], crop_size))

    def resize():
        image = tf.image.resize(window, [crop_size, crop_size], method="bilinear", antialias=True)
        if dtype == tf.uint8:
            return tf.saturate_cast(tf.round(image), tf.uint8)
        return tf.cast(image, dtype)

    image = tf.cond(same, lambda: tf.cast(window, dtype), resize)
    return tf.ensure_shape(image, [crop_size, crop_size, 3])


def flip_coin(seed):
    """Whether to reflect the image horizontally: probability 1/2 (AlexNet §4.1, VGG §3.1)."""
    return tf.random.stateless_uniform([], seed) < 0.5


def pca_alphas(std, seed, batch_shape=()):
    """AlexNet §4.1's α ~ N(0, std) (std 0.1), one triple per image: shape batch_shape + (3,).

    Multiplied by sqrt(λ) in `pca_shift`, so std 0.1 moves an image along P1 by about a tenth of the
    training set's colour standard deviation along P1 (about 10 levels on ImageNet-like photos)."""
    return tf.random.stateless_normal(tuple(batch_shape) + (3,), seed, stddev=std)


def pca_shift(eigenvalues, eigenvectors, alphas):
    """AlexNet §4.1's colour shift [P1 P2 P3][α1·sqrt(λ1) α2·sqrt(λ2) α3·sqrt(λ3)]ᵀ: alphas (..., 3) -> shifts (..., 3).

    Which reading: the paper writes α_i·λ_i with λ_i "the eigenvalues of the 3x3 covariance matrix of
    RGB pixel values". Those eigenvalues are variances (here on the 0..255 scale, e.g. λ1 ≈ 10,000 on
    ImageNet-like photos), so α·λ with α ~ N(0, 0.1) would shift pixels by about 1,000 levels, far beyond
    the 0..255 range, not the paper's "change in the intensity and color of the illumination". The
    authors' own data provider (cuda-convnet2) multiplies α by the standard deviations of the principal
    components (its `color_stdevs`), i.e. sqrt(λ): that is what is implemented, which gives shifts of
    0.1·sqrt(λ1), about 10 levels, along P1. `eigenvalues` are the variances as `stats.npz` stores them.

    `eigenvectors` P is (3, 3) with column i the eigenvector of `eigenvalues[i]` (the 0..255-scale
    RGB covariance of the training set, `stats.npz`); one matrix-vector product per image,
    vectorised over leading batch dimensions. Added to every pixel of the image (no clipping: the
    paper does not clip), folded with the mean colour when there is one.
    """
    stdevs = tf.sqrt(tf.maximum(tf.cast(eigenvalues, tf.float32), 0.0))
    eigenvectors = tf.cast(eigenvectors, tf.float32)
    return tf.linalg.matvec(eigenvectors, tf.cast(alphas, tf.float32) * stdevs)
