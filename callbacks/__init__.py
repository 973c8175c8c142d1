"""Keras callbacks for training: the learning-rate schedules, 10-crop evaluation, conv1 kernel images, throughput,
NaN guard, CSV and TensorBoard logging. Each works with plain `model.fit` and with the custom loop of
`keras_alexnet.training.trainer`, which drives a `keras.callbacks.CallbackList` the same way."""
