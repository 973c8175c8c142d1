"""Split-channel ("two-tower") convolution with per-tower device placement (AlexNet §3.2, §3.5).

In the paper, conv2, conv4 and conv5 connect each kernel only to the maps of the previous layer that
live on the same GPU. `TowerConv2D` reproduces that connectivity: the input channels are split into
``groups`` equal parts, tower i is its own `keras.layers.Conv2D` over part i, and the outputs are
concatenated in tower order (so the next towered layer's tower i sees this layer's tower i maps).

It is deliberately not ``Conv2D(groups=2)``: on CPU the grouped convolution's backward pass is about
14x slower than splitting and running two convolutions (conv2's shape at batch 32 on a 2-core CPU:
4,195 ms vs 306 ms). Both compute
the same function; `grouped_kernel` gives the equivalent grouped/Caffe-layout kernel.

Placement: Keras 3 does not keep `tf.device` scopes around functional-model construction, so the layer
enters ``tf.device(device_i)`` for tower i inside `call()`. ``tower_devices`` is
- ``None``: no placement (TensorFlow decides);
- ``"auto"``: ``/GPU:0``, ``/GPU:1``, ... when at least ``groups`` GPUs are visible, else no placement
  (resolved when the layer runs, so a model saved on a two-GPU machine still runs on a CPU); also no
  placement under a distribution strategy with several replicas, whose replicas own the devices
  (VGG §3.3's data parallelism instead of AlexNet's model parallelism);
- a list of ``groups`` device strings, e.g. ``["/GPU:0", "/GPU:1"]``.
Only the forward ops carry the scope; TensorFlow colocates the gradient ops with them.
"""

import keras
import tensorflow as tf


def resolve_tower_devices(tower_devices, groups=2):
    """The list of device strings tower i runs on, or None for no placement. [AlexNet §3.2]"""
    if tower_devices is None:
        return None
    if isinstance(tower_devices, str):
        if tower_devices != "auto":
            raise ValueError(f"tower_devices must be None, 'auto' or a list of {groups} devices, got {tower_devices!r}")
        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            return None
        gpus = tf.config.list_logical_devices("GPU")
        return [f"/GPU:{i}" for i in range(groups)] if len(gpus) >= groups else None
    devices = [str(device) for device in tower_devices]
    if len(devices) != groups:
        raise ValueError(f"tower_devices must list {groups} devices, got {len(devices)}: {devices}")
    return devices


def check_tower_devices(tower_devices, groups=2):
    """Validates a ``tower_devices`` setting without touching the devices (for configs and flags)."""
    if tower_devices is None or tower_devices == "auto":
        return tower_devices
    if isinstance(tower_devices, str) or len(list(tower_devices)) != groups:
        raise ValueError(f"tower_devices must be None, 'auto' or a list of {groups} device strings, got {tower_devices!r}")
    return [str(device) for device in tower_devices]


@keras.saving.register_keras_serializable(package="keras_alexnet")
class TowerConv2D(keras.layers.Layer):
    """A convolution split into ``groups`` towers, each seeing only its own share of the input maps.

    [AlexNet §3.2, §3.5] ``filters`` is the total over all towers (conv2: 256 = 2 x 128, each tower seeing
    48 of conv1's 96 maps). The towers are sublayers ``tower_0``, ``tower_1``, ... with the usual Conv2D
    kernels of shape (kh, kw, in_channels / groups, filters / groups).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        groups=2,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        tower_devices=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if groups < 1 or filters % groups:
            raise ValueError(f"{filters} filters cannot be split into {groups} equal towers")
        self.filters = int(filters)
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.groups = int(groups)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.tower_devices = check_tower_devices(tower_devices, self.groups)
        self.towers = [
            keras.layers.Conv2D(
                self.filters // self.groups,
                kernel_size,
                strides=strides,
                padding=padding,
                activation=activation,
                use_bias=use_bias,
                # Each tower gets its own initializer object, so unseeded ones draw different values.
                kernel_initializer=keras.initializers.get(keras.initializers.serialize(self.kernel_initializer)),
                bias_initializer=keras.initializers.get(keras.initializers.serialize(self.bias_initializer)),
                dtype=self.dtype_policy,
                name=f"tower_{i}",
            )
            for i in range(self.groups)
        ]

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(f"{self.name}: {channels} input channels cannot be split into {self.groups} towers")
        tower_shape = tuple(input_shape[:-1]) + (channels // self.groups,)
        for tower in self.towers:
            tower.build(tower_shape)

    def call(self, inputs):
        devices = resolve_tower_devices(self.tower_devices, self.groups)
        parts = tf.split(inputs, self.groups, axis=-1)
        outputs = []
        for i, (tower, part) in enumerate(zip(self.towers, parts)):
            if devices is None:
                outputs.append(tower(part))
            else:
                with tf.device(devices[i]):
                    outputs.append(tower(part))
        return tf.concat(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        tower_shape = tuple(input_shape[:-1]) + (None if input_shape[-1] is None else input_shape[-1] // self.groups,)
        shape = self.towers[0].compute_output_shape(tower_shape)
        return tuple(shape[:-1]) + (self.filters,)

    def grouped_kernel(self):
        """The kernel as one (kh, kw, in/groups, filters) array: the layout of ``Conv2D(groups=...)`` and
        of Caffe's grouped convolutions (towers concatenated along the output axis)."""
        return tf.concat([tower.kernel for tower in self.towers], axis=-1)

    def set_grouped_weights(self, kernel, bias=None):
        """Loads a grouped-layout kernel (and bias) into the towers (inverse of `grouped_kernel`)."""
        kernels = tf.split(tf.convert_to_tensor(kernel), self.groups, axis=-1)
        biases = tf.split(tf.convert_to_tensor(bias), self.groups) if bias is not None else [None] * self.groups
        for tower, k, b in zip(self.towers, kernels, biases):
            tower.kernel.assign(k)
            if b is not None:
                tower.bias.assign(b)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            groups=self.groups,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            tower_devices=self.tower_devices,
        )
        return config
