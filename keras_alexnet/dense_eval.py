"""Dense evaluation: a trained VGG or AlexNet as the fully-convolutional net sharing its weights (VGG §3.2).

VGG §3.2: "the fully-connected layers are first converted to convolutional layers (the first FC layer to a
7x7 conv. layer, the last two FC layers to 1x1 conv. layers). The resulting fully-convolutional net is
then applied to the whole (uncropped) image. The result is a class score map with the number of channels
equal to the number of classes, and a variable spatial resolution, dependent on the input image size.
Finally, to obtain a fixed-size vector of class scores for the image, the class score map is spatially
averaged (sum-pooled)." For AlexNet fc6 becomes a 6x6 convolution (its pool5 maps are 6x6).

`to_fully_convolutional(model)` returns a Keras model with:

- input ``image``: (batch, height, width, channels), any height/width at least the training size;
- output, a dict:
  - ``"score_map"``: (batch, rows, cols, num_classes), float32: the model's classifier activation (the
    softmax, or the logits when it was built with ``classifier_activation=None``) at every position of the
    fc6 window over the last pooled maps; rows = pool5 height - fc6 window + 1 (1 at the training size);
  - ``"scores"``: (batch, num_classes), float32: the spatial average of the score map.

At the training size (224x224) ``scores`` equals the original model's output to float32 rounding. The
conv, pooling, LRN and dropout layers are the original layer objects and the FC layers are applied through
`DenseAsConv`, which reads the original Dense variables: nothing is copied, so later training of either
model is seen by both.
"""

import keras

from keras_alexnet.alexnet import OUTPUT_LAYERS


@keras.saving.register_keras_serializable(package="keras_alexnet")
class DenseAsConv(keras.layers.Layer):
    """A Dense layer applied as a ``window``-sized VALID convolution over NHWC maps, sharing its variables.

    [VGG §3.2] The Dense kernel (h*w*c, units), whose rows follow Keras' NHWC flatten order, is reshaped to
    a (h, w, c, units) convolution kernel; bias and activation are the Dense layer's.
    """

    def __init__(self, dense, window, **kwargs):
        super().__init__(**kwargs)
        if isinstance(dense, dict):
            dense = keras.saving.deserialize_keras_object(dense)
        self.dense = dense
        self.window = tuple(int(side) for side in window)

    def build(self, input_shape):
        if not self.dense.built:
            self.dense.build((None, self.window[0] * self.window[1] * input_shape[-1]))

    def call(self, inputs):
        channels = self.dense.kernel.shape[0] // (self.window[0] * self.window[1])
        kernel = keras.ops.reshape(self.dense.kernel, self.window + (channels, self.dense.units))
        outputs = keras.ops.conv(inputs, kernel, strides=1, padding="valid")
        if self.dense.use_bias:
            outputs = outputs + self.dense.bias
        return self.dense.activation(outputs) if self.dense.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        rows, cols = (
            None if side is None else side - window + 1 for side, window in zip(input_shape[1:3], self.window)
        )
        return (input_shape[0], rows, cols, self.dense.units)

    def get_config(self):
        config = super().get_config()
        config.update(dense=keras.saving.serialize_keras_object(self.dense), window=self.window)
        return config


def to_fully_convolutional(model: keras.Model, name: str = None) -> keras.Model:
    """The fully-convolutional net sharing ``model``'s weights; see the module docstring. [VGG §3.2]

    ``model`` is a chain of layers as built by `keras_alexnet.registry.build_model` (AlexNet or VGG):
    conv/pool layers, ``flatten``, Dense layers (with dropout between them), then ``softmax``/``logits``.
    """
    layers = model.layers[1:]
    for previous, layer in zip(model.layers, layers):
        if layer.input is not previous.output:
            raise ValueError(f"{model.name}: dense evaluation needs a chain of layers; {layer.name} is not one")
    inputs = keras.Input(shape=(None, None, model.input_shape[-1]), name="image")
    x, window = inputs, None
    for layer in layers:
        if isinstance(layer, keras.layers.Flatten):
            window = tuple(layer.input.shape[1:3])
            continue
        if isinstance(layer, keras.layers.Dense):
            if window is None:
                raise ValueError(f"{model.name}: {layer.name} comes before the Flatten layer")
            x = DenseAsConv(layer, window, name=f"{layer.name}_conv")(x)
            window = (1, 1)
            continue
        x = layer(x)
    if window is None or model.layers[-1].name not in OUTPUT_LAYERS:
        raise ValueError(f"{model.name}: expected Flatten, Dense layers and a final softmax/logits layer")
    scores = keras.layers.GlobalAveragePooling2D(dtype="float32", name="scores")(x)
    return keras.Model(inputs, {"score_map": x, "scores": scores}, name=name or f"{model.name}_dense")
