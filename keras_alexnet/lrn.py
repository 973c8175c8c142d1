"""Local response normalization (AlexNet §3.3), as a Keras layer over `tf.nn.local_response_normalization`.

The paper's formula, for the activity a^i of kernel map i (after the ReLU) at one spatial position:

    b^i = a^i / (k + α · Σ_{j=max(0, i−n/2)}^{min(N−1, i+n/2)} (a^j)²)^β,   k=2, n=5, α=1e-4, β=0.75.

Two readings of α exist, and this layer offers both explicitly:

- ``convention="paper"`` (default): α multiplies the plain sum of squares, as the formula is printed.
  This is also what TensorFlow's ``alpha`` means, so TF gets ``alpha=α``.
- ``convention="cuda_convnet"``: α is divided by n before it multiplies the sum, as in cuda-convnet's
  ``rnorm`` layers, Caffe's ``LRN`` layer and PyTorch's ``LocalResponseNorm``; TF gets ``alpha=α/n``.
- ``convention="caffe"``: α/n as in cuda-convnet, read from Caffe's ``LRN`` layer (``local_size`` n,
  ``alpha``, ``beta``, ``k`` = 1 by default): the convention of Caffe's bvlc_alexnet; k defaults to
  Caffe's 1 with it (`default_k`), to the paper's 2 otherwise.

Near the first and last maps the sum runs over the maps that exist (the paper's max/min bounds), which is
what TF's op does. The sum runs over all N maps of the layer (the paper's N), also across the boundary
between the two towers. VGG's A-LRN uses the same layer with the same parameters (VGG §2.3).

Under mixed precision (bfloat16/float16 compute dtype) the normalization is computed in float32 (the sum
of squares overflows or loses the small α·Σ term in float16) by `band_lrn`, the same function written as
one banded matrix product for the window sum with a hand-derived gradient; the result is cast back to the
layer's compute dtype. In a bf16 training step of the full AlexNet, TF's LRN op behind casts took ~38% of
all op time; `band_lrn` needs about half the CPU time of cast + ``LRN`` + ``LRNGrad`` + cast
(bench/README.md). In float32 the layer stays TF's single core ``LRN`` op (also in a SavedModel).
"""

import keras
import numpy as np
import tensorflow as tf

from keras_alexnet.registry import LRN_CONVENTIONS as CONVENTIONS

PAPER_K, CAFFE_K = 2.0, 1.0  # AlexNet §3.3's k; Caffe's LRN default k


def default_k(convention: str) -> float:
    """k when none is given: Caffe's 1 under the "caffe" convention, the paper's 2 otherwise."""
    return CAFFE_K if convention == "caffe" else PAPER_K


@keras.saving.register_keras_serializable(package="keras_alexnet")
class LocalResponseNormalization(keras.layers.Layer):
    """b = a / (k + α' Σ a²)^β over ``size`` adjacent channels (last axis), α' = α or α/size. [AlexNet §3.3]

    Args:
        size: n, the number of adjacent maps in the sum (odd; 5 in the paper).
        k: the additive constant (2 in the paper); None: `default_k(convention)`.
        alpha: α (1e-4 in the paper).
        beta: β (0.75 in the paper).
        convention: "paper" (α multiplies the sum), "cuda_convnet" or "caffe" (α/n multiplies the sum).
    """

    def __init__(self, size=5, k=None, alpha=1e-4, beta=0.75, convention="paper", **kwargs):
        super().__init__(**kwargs)
        if convention not in CONVENTIONS:
            raise ValueError(f"LRN convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd number of maps, got {size}")
        self.size = int(size)
        self.k = float(default_k(convention) if k is None else k)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.convention = convention

    @property
    def tf_alpha(self) -> float:
        """The ``alpha`` that TF's op multiplies its plain sum of squares by."""
        return self.alpha if self.convention == "paper" else self.alpha / self.size

    def call(self, inputs):
        if inputs.dtype != tf.float32:
            return band_lrn(inputs, self.size // 2, self.k, self.tf_alpha, self.beta)
        return tf.nn.local_response_normalization(
            inputs, depth_radius=self.size // 2, bias=self.k, alpha=self.tf_alpha, beta=self.beta
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            size=self.size, k=self.k, alpha=self.alpha, beta=self.beta, convention=self.convention
        )
        return config


def band_lrn(inputs, depth_radius, bias, alpha, beta):
    """TF's ``local_response_normalization`` computed in float32, returned in ``inputs.dtype``. [AlexNet §3.3]

    d_i = k + α Σ_{|j−i|≤r} a_j² is one matrix product of the squares with the 0/1 band matrix B
    (B[j, i] = 1 for |j − i| ≤ r, the paper's max/min bounds at the edges), b_i = a_i d_i^−β. The gradient
    is written out, so autodiff keeps none of the intermediate steps: with g = ∂L/∂b,
    ∂L/∂a_j = g_j d_j^−β − 2αβ a_j Σ_{|i−j|≤r} g_i b_i / d_i (B is symmetric: the same product).
    """
    channels = inputs.shape[-1]
    band = np.abs(np.arange(channels)[:, None] - np.arange(channels)[None, :]) <= depth_radius
    band = tf.constant(band.astype(np.float32))

    def window_sum(values):
        return tf.reshape(tf.matmul(tf.reshape(values, [-1, channels]), band), tf.shape(values))

    def power(d):
        if beta == 0.75:  # d^-0.75 = d^-0.5 · d^-0.25: two square roots instead of exp(log)
            r = tf.math.rsqrt(d)
            return r * tf.sqrt(r)
        return tf.pow(d, -beta)

    @tf.custom_gradient
    def normalize(a):
        a32 = tf.cast(a, tf.float32)
        d = bias + alpha * window_sum(tf.square(a32))
        scale = power(d)
        b = a32 * scale

        def grad(upstream):
            g = tf.cast(upstream, tf.float32)
            return tf.cast(g * scale - (2.0 * alpha * beta) * a32 * window_sum(g * b / d), a.dtype)

        return tf.cast(b, a.dtype), grad

    return normalize(inputs)
