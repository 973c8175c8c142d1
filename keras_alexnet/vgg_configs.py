"""VGG Table 1's configurations A-E as data, and their conv layer names, without importing Keras (the
command line checks layer names before TensorFlow is imported; `keras_alexnet.vgg` builds the nets). [VGG §2.1-2.3]
"""

M = "M"
# VGG Table 1 (ConvNet configurations, columns A-E). (filters, kernel side) per conv, "M" per max-pool.
CONFIGS = {
    "A": [(64, 3), M, (128, 3), M, (256, 3), (256, 3), M, (512, 3), (512, 3), M, (512, 3), (512, 3), M],
    "B": [(64, 3), (64, 3), M, (128, 3), (128, 3), M, (256, 3), (256, 3), M,
          (512, 3), (512, 3), M, (512, 3), (512, 3), M],
    "C": [(64, 3), (64, 3), M, (128, 3), (128, 3), M, (256, 3), (256, 3), (256, 1), M,
          (512, 3), (512, 3), (512, 1), M, (512, 3), (512, 3), (512, 1), M],
    "D": [(64, 3), (64, 3), M, (128, 3), (128, 3), M, (256, 3), (256, 3), (256, 3), M,
          (512, 3), (512, 3), (512, 3), M, (512, 3), (512, 3), (512, 3), M],
    "E": [(64, 3), (64, 3), M, (128, 3), (128, 3), M, (256, 3), (256, 3), (256, 3), (256, 3), M,
          (512, 3), (512, 3), (512, 3), (512, 3), M, (512, 3), (512, 3), (512, 3), (512, 3), M],
}


def conv_layer_names(config: str) -> list:
    """The conv layer names of a configuration, in order: conv1_1, conv1_2, conv2_1, ..."""
    names, block, index = [], 1, 0
    for entry in CONFIGS[config]:
        if entry == M:
            block, index = block + 1, 0
        else:
            index += 1
            names.append(f"conv{block}_{index}")
    return names
