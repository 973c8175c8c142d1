"""`python main.py figures`: AlexNet's Figure 3 (conv1 kernels) and Figure 4 left (top-5 panels).

Writes `conv1.png` (the first layer's kernels, one grid per tower side by side, AlexNet §6.1),
`top5.png` (images of `--split` with bars for their five most probable labels, the correct one red;
successes and failures of the most probable label alternating, as the paper's figure shows both, each
panel marked) and `top5.md` (the label names of each panel); with `--logdir`, also both images to
TensorBoard.
"""

import os

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flagdefs, flaghelp

flagdefs.define_trained_model_flags()
flags.DEFINE_string("split", "validation", "Split of the images in the top-5 panels.", module_name=flaghelp.DATA)
flags.DEFINE_integer("num_images", 8, "Images in the top-5 figure (the paper shows eight), successes and "
                     "failures alternating. [AlexNet §6.1]", lower_bound=1, module_name=flaghelp.FIGURE)
flags.DEFINE_integer("tile", 96, "Side of each image in the top-5 figure, in pixels.", lower_bound=8,
                     module_name=flaghelp.FIGURE)
flags.DEFINE_integer("kernel_scale", 4, "Each conv1 kernel pixel drawn as NxN pixels.", lower_bound=1,
                     module_name=flaghelp.FIGURE)
flags.DEFINE_string("output_dir", None, "Folder for conv1.png, top5.png and top5.md.", module_name=flaghelp.OUTPUTS)
flags.DEFINE_string("logdir", None, "Also write both images to TensorBoard in this folder.",
                    module_name=flaghelp.OUTPUTS)
flags.DEFINE_integer("batch_size", 32, "Images per forward pass while panels are looked for.", lower_bound=1,
                     module_name=flaghelp.SPEED)
FLAGS = flags.FLAGS
SCAN_PER_PANEL = 50  # images read per panel at most while looking for both successes and failures


def validate():
    flagdefs.check_model_paths()
    flagdefs.single_test_scale()
    outputs.check_writable_dir(flagdefs.figures_dir(), "output_dir")
    if FLAGS.logdir:
        outputs.check_writable_dir(FLAGS.logdir, "logdir")
    flagdefs.check_figure_inputs("the figures")


def starting() -> str:
    """The first line, printed before TensorFlow is imported."""
    return (f"Figures of {FLAGS.model}: conv1 kernels and the top-5 labels of {FLAGS.num_images} {FLAGS.split} "
            "images")


def run(argv):
    import numpy as np
    import tensorflow as tf
    from pipelines import record_parser

    from keras_alexnet import figures
    from keras_alexnet.errors import UserError
    from keras_alexnet.evaluation import models

    model, settings, data_dir, names = flagdefs.figure_inputs()
    layer_names = [layer.name for layer in model.layers]
    first_conv = "conv1" if "conv1" in layer_names else "conv1_1"  # AlexNet / VGG naming
    output_dir = flagdefs.figures_dir()
    kernels = figures.conv1_grid(model, FLAGS.kernel_scale, first_conv)
    conv1_png = os.path.join(output_dir, "conv1.png")
    with outputs.writing(conv1_png, partial=[conv1_png]):
        os.makedirs(output_dir, exist_ok=True)
        written = [figures.write_png(conv1_png, kernels)]

    scanned, kept = 0, {True: [], False: []}  # panels found, by whether the top-1 label is correct
    with record_parser.user_errors():
        for pixels, inputs, labels in models.center_crops_with_originals(data_dir, FLAGS.split, settings,
                                                                         FLAGS.batch_size):
            probabilities = model.predict(inputs.numpy(), verbose=0)
            top = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]
            for picture, label, classes, row in zip(pixels.numpy(), labels.numpy(), top, probabilities):
                found = kept[bool(classes[0] == label)]
                if len(found) < FLAGS.num_images:
                    found.append((picture, label, classes, row[classes]))
            scanned += len(probabilities)
            if all(len(found) == FLAGS.num_images for found in kept.values()) or \
                    scanned >= SCAN_PER_PANEL * FLAGS.num_images:
                break
    if not scanned:
        raise UserError(f"{data_dir}: the {FLAGS.split} split is empty")
    candidates = kept[True] + kept[False]
    order = figures.successes_and_failures([True] * len(kept[True]) + [False] * len(kept[False]), FLAGS.num_images)
    pixels, labels, top, top_probabilities = (np.stack(part) for part in zip(*[candidates[i] for i in order]))
    panels = figures.top5_panels(pixels, top, top_probabilities, labels, FLAGS.tile, class_names=names)
    png, md = os.path.join(output_dir, "top5.png"), os.path.join(output_dir, "top5.md")
    with outputs.writing(output_dir, partial=[png, md]):
        written.append(figures.write_png(png, panels))
        with open(md, "w", encoding="utf-8") as f:
            f.write(f"# Top-5 labels of {FLAGS.split} images, successes and failures of the most probable label "
                    f"alternating (from the first {scanned}); the correct label in bold [AlexNet §6.1, Figure 4]\n\n")
            f.write(figures.top5_markdown(top, top_probabilities, labels, names))
        written.append(md)
    if FLAGS.logdir:
        with outputs.writing(FLAGS.logdir), tf.summary.create_file_writer(FLAGS.logdir).as_default():
            tf.summary.image("figures/conv1_kernels", kernels[None], step=0,
                             description="conv1 kernels, one grid per tower [AlexNet §6.1, Figure 3]")
            tf.summary.image("figures/top5", panels[None], step=0,
                             description="top-5 labels, correct label red [AlexNet §6.1, Figure 4]")
    print("wrote " + ", ".join(written))
