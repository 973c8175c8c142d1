"""Decoding any common image to RGB, the stored-image policies, and JPEG encoding, all with TensorFlow.

Every prepared image is stored as an RGB JPEG (AlexNet §2: "we trained our network on the raw RGB
values of the pixels"). What TensorFlow's decoders do with awkward inputs, checked on TF 2.21:

- CMYK/YCCK JPEGs (Adobe, as in 22 ImageNet training files): `decode_image` converts them to RGB
  itself (libjpeg-turbo's CMYK output, converted by TF); nothing to add.
- Greyscale (1 channel) and grey+alpha (2 channels) images: replicated to three channels here.
- Alpha channels (RGBA PNG/GIF/WebP): composited over white here (`decode_image(channels=3)` would
  simply drop alpha, leaving whatever colour the transparent pixels happen to hold).
- A PNG named `.JPEG` (one ImageNet training file): the format is read from the bytes, not the name.
- 16-bit PNGs: reduced to 8 bits by the decoder. Animated GIFs: the first frame.
- Truncated, empty or non-image data: `DecodeError`, which `prepare` logs and counts as skipped.
- EXIF orientation is not applied (neither ImageNet's tools nor TensorFlow apply it).
"""

import numpy as np

POLICIES = ("alexnet", "vgg", "none")
DEFAULT_SIZE = {"alexnet": 256, "vgg": 512, "none": 0}
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class DecodeError(Exception):
    """The bytes are not an image TensorFlow can decode (truncated, empty, unknown format)."""


def decode(data: bytes) -> np.ndarray:
    """Decodes JPEG/PNG/GIF/BMP/WebP bytes to uint8 (H, W, C) as stored (C = 1, 2, 3 or 4; CMYK -> 3).

    Raises DecodeError with TensorFlow's reason when the bytes cannot be decoded.
    """
    import tensorflow as tf

    if not data:
        raise DecodeError("empty file")
    try:
        return tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False).numpy()
    except tf.errors.OpError as error:  # InvalidArgument (corrupt), Unknown, ResourceExhausted (huge)
        raise DecodeError(_first_line(error.message)) from None


def decode_rgb(data: bytes) -> np.ndarray:
    """Decodes any supported image bytes to RGB uint8 (H, W, 3) (see the module docstring)."""
    return to_rgb(decode(data))


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1|2|3|4) uint8 -> (H, W, 3) uint8: grey replicated, alpha composited over white."""
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[-1]
    if channels in (2, 4):
        colour = image[:, :, :-1].astype(np.float32)
        alpha = image[:, :, -1:].astype(np.float32) / 255.0
        image = np.round(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        channels -= 1
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    if image.shape[-1] != 3:
        raise DecodeError(f"unsupported number of channels: {channels}")
    return image


def target_shape(height: int, width: int, policy: str, size: int):
    """The (height, width) an image is resized to before any crop, and whether it is then centre-cropped.

    - "alexnet" (AlexNet §2): rescale so the shorter side is `size` (256), then crop the central
      `size`x`size` patch.
    - "vgg" (VGG §3.1): rescale isotropically so the shorter side is `size` (512 = S_max of the scale
      jitter S ~ [256, 512]), aspect ratio kept; training rescales again to a random S.
    - "none": stored at its own size.
    """
    if policy == "none":
        return (height, width), False
    if policy not in ("alexnet", "vgg"):
        raise ValueError(f"unknown image policy {policy!r} (choose from {', '.join(POLICIES)})")
    short = min(height, width)
    new_h = size if height == short else max(size, int(round(height * size / short)))
    new_w = size if width == short else max(size, int(round(width * size / short)))
    return (new_h, new_w), policy == "alexnet"


def apply_policy(image: np.ndarray, policy: str, size: int) -> np.ndarray:
    """Resizes (bilinear, antialiased when shrinking) and crops an RGB uint8 image per `target_shape`.

    Returns `image` itself when the policy leaves it unchanged.
    """
    height, width = image.shape[:2]
    (new_h, new_w), crop = target_shape(height, width, policy, size)
    if (new_h, new_w) != (height, width):
        image = resize(image, new_h, new_w)
    if crop and (new_h, new_w) != (size, size):
        top, left = (new_h - size) // 2, (new_w - size) // 2
        image = np.ascontiguousarray(image[top : top + size, left : left + size])
    return image


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of uint8 (H, W, C) or (N, H, W, C) images, rounded back to uint8.

    Antialiased when shrinking (no aliasing from skipped pixels); plain bilinear when enlarging, where
    antialiasing changes nothing but costs 4x.
    """
    import tensorflow as tf

    old_h, old_w = images.shape[-3:-1]
    shrinking = height < old_h or width < old_w
    out = tf.image.resize(images, (height, width), method="bilinear", antialias=shrinking)
    return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8).numpy()


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """RGB uint8 (H, W, 3) -> baseline JPEG bytes."""
    import tensorflow as tf

    return tf.io.encode_jpeg(image, format="rgb", quality=quality).numpy()


def convert(data: bytes, policy: str, size: int, quality: int = 95):
    """Image file bytes -> (RGB JPEG bytes, height, width) under the stored-image policy.

    A 3-channel JPEG that the policy leaves at its size is kept byte for byte (no second lossy
    encoding); everything else is decoded, converted to RGB, resized and encoded.
    """
    raw = decode(data)
    image = to_rgb(raw)
    stored = apply_policy(image, policy, size)
    if stored is image and raw.shape[-1] == 3 and data[:3] == JPEG_MAGIC and not _is_cmyk_jpeg(data):
        return data, image.shape[0], image.shape[1]
    return encode_jpeg(stored, quality), stored.shape[0], stored.shape[1]


def as_jpeg_or_png(data: bytes) -> bytes:
    """`data` itself when it is JPEG or PNG, else (GIF, BMP, WebP) the image as lossless RGB PNG bytes, for
    readers that take only JPEG and PNG (the serving signature). DecodeError when it cannot be decoded."""
    if data[:3] == JPEG_MAGIC or data[:8] == PNG_MAGIC:
        return data
    import tensorflow as tf

    return tf.io.encode_png(decode_rgb(data)).numpy()


def _is_cmyk_jpeg(data: bytes) -> bool:
    """True for a JPEG whose frame header declares 4 components (CMYK/YCCK), which TF decodes to RGB."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return i + 9 < len(data) and data[i + 9] == 4
        i += 2 + length
    return False


def _first_line(message: str) -> str:
    text = message.split("[Op:")[0].strip()
    if "}}" in text:
        text = text.split("}}", 1)[1].strip()
    return text.splitlines()[0] if text else "cannot decode"


def convert_pixels(images: np.ndarray, policy: str, size: int, quality: int = 95) -> list:
    """A batch of same-sized raw images (N, H, W[, C]) -> [(RGB JPEG bytes, height, width)], resized in one op.

    The fast path for array sources (Fashion-MNIST): one batched resize instead of one per image.
    """
    if images.ndim == 3:
        images = images[..., None]
    if len(images) == 0:
        return []
    if images.shape[-1] not in (1, 3):  # alpha: composite first
        images = np.stack([to_rgb(image) for image in images])
    height, width = images.shape[1:3]
    (new_h, new_w), crop = target_shape(height, width, policy, size)
    if (new_h, new_w) != (height, width):
        images = resize(images, new_h, new_w)  # grey is resized before replication: 3x less work
    if crop and (new_h, new_w) != (size, size):
        top, left = (new_h - size) // 2, (new_w - size) // 2
        images = images[:, top : top + size, left : left + size]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    images = np.ascontiguousarray(images)
    return [(encode_jpeg(image, quality), image.shape[0], image.shape[1]) for image in images]
