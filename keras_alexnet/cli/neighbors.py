"""`python main.py neighbors`: training images nearest to query images in fc7 space (AlexNet §6.1, Fig. 4 right).

"If two images produce feature activation vectors with a small Euclidean separation, we can say that
the higher levels of the neural network consider them to be similar." For the first `--num_queries`
images of `--query_split`, the `--k` training images with the smallest Euclidean distance between
their last-hidden-layer (fc7) activations, as one PNG grid (query first in each row) and a Markdown
list of labels and distances beside it; the grid is titled (layer, splits), its query column marked, each
neighbour's distance written under it.
"""

import os

from absl import flags

from keras_alexnet import outputs
from keras_alexnet.cli import flagdefs, flaghelp
from keras_alexnet.errors import FlagError

flagdefs.define_trained_model_flags()
flags.DEFINE_string("query_split", "validation", "Split the query images come from.", module_name=flaghelp.DATA)
flags.DEFINE_string("train_split", "train", "Split searched for neighbours.", module_name=flaghelp.DATA)
flags.DEFINE_integer("max_train", None, "Search only the first N training images.", lower_bound=1,
                     module_name=flaghelp.DATA)
flags.DEFINE_string("layer", "fc7", "The layer whose activations are compared: the last hidden layer, or "
                    "any other (a conv or pooling layer's feature maps compared as one flattened vector). "
                    "[AlexNet §6.1]", module_name=flaghelp.EVALUATION)
flags.DEFINE_integer("num_queries", 5, "Query images (rows of the figure; Figure 4 shows five). [AlexNet §6.1]",
                     lower_bound=1, module_name=flaghelp.FIGURE)
flags.DEFINE_integer("k", 6, "Neighbours per query (columns after the query; Figure 4 shows six). "
                     "[AlexNet §6.1]", lower_bound=1, module_name=flaghelp.FIGURE)
flags.DEFINE_integer("tile", 64, "Side of each image in the grid, in pixels.", lower_bound=8,
                     module_name=flaghelp.FIGURE)
flags.DEFINE_string("output_dir", None, "Folder for neighbors.png and neighbors.md.", module_name=flaghelp.OUTPUTS)
flags.DEFINE_integer("batch_size", 32, "Images per forward pass.", lower_bound=1, module_name=flaghelp.SPEED)
FLAGS = flags.FLAGS


def validate():
    flagdefs.check_model_paths()
    flagdefs.single_test_scale()
    outputs.check_writable_dir(flagdefs.figures_dir(), "output_dir")
    flagdefs.check_figure_inputs("fc7 features")


def starting() -> str:
    """The first line, printed before TensorFlow is imported."""
    searched = f"the first {FLAGS.max_train} " if FLAGS.max_train else ""
    return (f"Nearest {searched}{FLAGS.train_split} images to {FLAGS.num_queries} {FLAGS.query_split} images by "
            f"{FLAGS.layer} distance, model {FLAGS.model}")


def run(argv):
    from pipelines import record_parser

    from keras_alexnet import figures
    from keras_alexnet.errors import UserError
    from keras_alexnet.evaluation import models
    from keras_alexnet.progress import ProgressLine

    model, settings, data_dir, names = flagdefs.figure_inputs()
    if FLAGS.layer not in [layer.name for layer in model.layers]:
        raise FlagError(f"--layer: model '{model.name}' has no layer '{FLAGS.layer}'")
    features = figures.fc7_model(model, FLAGS.layer)

    def batches(split):
        return models.center_crops_with_originals(data_dir, split, settings, FLAGS.batch_size)

    with record_parser.user_errors():
        shown, fed, labels = [], [], []
        for pixels, inputs, batch_labels in batches(FLAGS.query_split).unbatch().take(FLAGS.num_queries).batch(
                FLAGS.num_queries):
            shown, fed, labels = pixels.numpy(), inputs.numpy(), batch_labels.numpy()
        if len(labels) == 0:
            raise UserError(f"{data_dir}: the {FLAGS.query_split} split is empty")
        train = batches(FLAGS.train_split)
        total = models.split_size(data_dir, FLAGS.train_split)
        if FLAGS.max_train:
            train = train.unbatch().take(FLAGS.max_train).batch(FLAGS.batch_size)
            total = min(total, FLAGS.max_train) if total else FLAGS.max_train
        progress = ProgressLine(f"{FLAGS.layer} features of {FLAGS.train_split}", total)
        search = figures.Nearest(features.predict(fed, verbose=0), FLAGS.k, progress)
        for pixels, inputs, batch_labels in train:  # one pass: the neighbours' pictures are kept as found
            search.add(features(inputs, training=False).numpy(), list(zip(pixels.numpy(), batch_labels.numpy())))
        search.close()
    found = [[search.item(i) for i in row] for row in search.indices]
    title = [f"Nearest neighbours by the Euclidean distance d of {FLAGS.layer} activations",
             f"queries: {FLAGS.query_split} images (left); neighbours: the {FLAGS.k} nearest of {search.seen:,} "
             f"{FLAGS.train_split} images"]
    grid = figures.neighbor_grid(shown, [[picture for picture, _ in row] for row in found], FLAGS.tile,
                                 [names[label] for label in labels],
                                 [[names[label] for _, label in row] for row in found], search.distances, title)
    output_dir = flagdefs.figures_dir()
    png, md = os.path.join(output_dir, "neighbors.png"), os.path.join(output_dir, "neighbors.md")
    lines = [f"# Nearest training images by Euclidean distance of {FLAGS.layer} activations [AlexNet §6.1, Figure 4]",
             "", f"{search.seen} {FLAGS.train_split} images searched; row = query ({FLAGS.query_split} image, first "
             f"column), then its {FLAGS.k} nearest.", "", "| row | query label | neighbours: label (distance) |",
             "| --- | --- | --- |"]
    for row, (label, neighbours, distances) in enumerate(zip(labels, found, search.distances), 1):
        listed = "; ".join(f"{names[label_found]} ({d:.2f})" for (_, label_found), d in zip(neighbours, distances))
        lines.append(f"| {row} | {names[label]} | {listed} |")
    with outputs.writing(output_dir, partial=[png, md]):
        os.makedirs(output_dir, exist_ok=True)
        figures.write_png(png, grid)
        with open(md, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    print(f"wrote {png} and {md}")
