"""VGG §3.1's warm start (`train --warm_start=SOURCE`): a trained net A's first four conv layers and three
FC layers initialise a deeper net (`keras_alexnet.vgg.warm_start` copies them).

The source is read as `--init_from` reads it (`finetune.read_source`): a run folder (its latest
checkpoint, or its `.keras` model when it has no checkpoints), one of its checkpoints, or a `.keras`
file. A checkpoint holds conv1 as trained, on inputs times the source's `--input_scale`; a `.keras` model
has that scale folded into conv1. conv1 is rescaled so that the new run, on inputs times its own
`--input_scale`, computes what net A did (`finetune.rescale_conv1`).
"""

from keras_alexnet.errors import UserError
from keras_alexnet.training import finetune


def initialise(model, config) -> str:
    """Copies net A's layers from `config.warm_start` into `model` (the deeper net, built for the new run)
    and rescales conv1 for the input scales; returns the line saying what was done. UserError in one line
    when the source cannot be read or does not fit."""
    from keras_alexnet.vgg import warm_start

    source = finetune.read_source(config.warm_start)
    if source.record is None and not source.is_keras_model:
        raise UserError(f"--warm_start={config.warm_start}: a checkpoint outside a run folder (no run.json "
                        "says which net it holds): give the run folder of net A or its .keras model")
    source_model, weights = finetune.load_source_model(source, config, model, "warm_start")
    try:
        copied = warm_start(model, source_model)
    except ValueError as error:
        raise UserError(f"--warm_start={config.warm_start}: {str(error).splitlines()[0]}") from None
    rescale = finetune.rescale_conv1(model, source, config.input_scale)
    line = f"Warm start from {config.warm_start} ({weights}): {', '.join(copied)}"
    if rescale != 1.0:
        line += f"; conv1 x{rescale:g} for --input_scale"
    return line + " [VGG §3.1]"
