"""The table of subcommands: name -> (module, one-line description). Order is the order of `--help`."""

COMMANDS = {
    "train": ("keras_alexnet.cli.train", "train AlexNet or VGG with the papers' recipe (no flags: the default CPU run)"),
    "prepare": ("keras_alexnet.cli.prepare", "images (ILSVRC tars, class folders, Fashion-MNIST) -> TFRecord shards"),
    "stats": ("keras_alexnet.cli.stats", "mean image, mean RGB and RGB PCA of the training shards -> stats.npz"),
    "verify": ("keras_alexnet.cli.verify", "check every shard's CRCs and records; one line per damaged shard"),
    "summary": ("keras_alexnet.cli.summary", "a model's layer table, feature-map sizes and parameter count"),
    "evaluate": ("keras_alexnet.cli.evaluate", "top-1/top-5 error tables under the papers' test protocols"),
    "export": ("keras_alexnet.cli.export", "write a trained model as a TF Serving SavedModel version"),
    "predict": ("keras_alexnet.cli.predict", "top-5 classes for images, locally or from TF Serving (REST)"),
    "neighbors": ("keras_alexnet.cli.neighbors", "training images nearest in fc7 space, as an image grid"),
    "figures": ("keras_alexnet.cli.figures", "conv1 kernel grid and top-5 panels as PNG (and TensorBoard)"),
    "study": ("keras_alexnet.cli.study", "re-measure the papers' claims: arms x seeds, intervals, verdicts"),
    "import_weights": ("keras_alexnet.cli.import_weights", "published AlexNet (Caffe, torchvision) / VGG16/19 weights -> a run folder"),
    "data_service": ("keras_alexnet.cli.data_service", "tf.data service dispatcher or worker: the training input pipeline on other "
                     "machines"),
}
