"""The names of the numbers training and evaluation record, in one place: the keys of the epoch logs
(`metrics.csv`, TensorBoard's `epoch/...` tags, the progress lines), of the evaluation engine's errors
(`keras_alexnet.evaluation.tables.errors`) and of the studies' results.

No TensorFlow at import: the study and the learning-rate schedule table read these names before it loads
(`keras_alexnet.metrics`, which computes the errors, needs it).
"""

TOP_K = (1, 5)  # the errors AlexNet §6 and VGG §4 report: top-1 and top-5


def error_name(k: int) -> str:
    """The key of the top-k error (a fraction): `top1_error`, `top5_error`."""
    return f"top{k}_error"


LOSS = "loss"
ERRORS = tuple(error_name(k) for k in TOP_K)
TOP1_ERROR, TOP5_ERROR = ERRORS
COUNT = "count"  # the images an evaluation's errors are over

VALIDATION_PREFIX = "val_"  # Keras' prefix for the validation pass's logs (the centre crop)
TEN_CROP_PREFIX = "ten_crop_"  # the 10-crop validation callback's (AlexNet §4.1)

VAL_TOP1_ERROR = VALIDATION_PREFIX + TOP1_ERROR  # what the plateau schedule and the best exports watch
