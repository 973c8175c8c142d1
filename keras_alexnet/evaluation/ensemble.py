"""From the runs of every (model, protocol, test scale) to the rows of the error table.

For each model, and for the fusion of all models when there are several (AlexNet §6: the softmax of
five CNNs averaged; VGG §4.4: "we combine the outputs of several models by averaging their soft-max
class posteriors"), the table has:
- one row per protocol and test scale Q (VGG Table 3 is the dense single-scale case);
- one row per protocol over all scales when there are several (VGG §4.2, Table 4);
- one row per combination of `pipelines.eval_protocols.COMBINATIONS` whose protocols all ran,
  averaging them over all scales (VGG §4.3, Table 5: "dense + multi-crop").
Every combination averages softmax outputs (`protocols.average`); images/s is the number of images
divided by the time of all the passes the row needed. Rows are named by the table's `method`s.
"""

from keras_alexnet.evaluation import protocols, tables
from pipelines import eval_protocols


def _unique(values):
    return list(dict.fromkeys(values))


def _combined(runs):
    probabilities, labels = protocols.average(runs)
    seconds = sum(run.seconds for run in runs)
    return probabilities, labels, (len(labels) / seconds if seconds > 0 else float("inf"))


def _scales_shown(scale_lists) -> list:
    """The test scale column of a row: the scales, or each model's own ("256 / 384") when they differ."""
    if all(scales == scale_lists[0] for scales in scale_lists):
        return scale_lists[0]
    return [" / ".join(",".join(str(q) for q in scales) for scales in scale_lists)]


def table_rows(runs, fuse: bool = True) -> list:
    """The error-table rows (dicts with `tables.COLUMNS`) for `runs`, in the order described above; with
    `fuse` and several models, the fusion's rows too.

    Each model is fused at its own test scales (AlexNet §6 and VGG §4.4 average models evaluated each
    under its own settings): the i-th scale of every model together, so an AlexNet at Q=256 and a VGG net
    at Q=384 fuse. ValueError in one line naming the models when they were evaluated at different numbers
    of scales, or, from `protocols.average`, on different images or classes."""
    runs = list(runs)
    by_key = {(run.model, run.protocol, run.scale): run for run in runs}
    models = _unique(run.model for run in runs)
    methods = _unique(run.protocol for run in runs)
    scales_of = {model: _unique(run.scale for run in runs if run.model == model) for model in models}
    groups = [(model, [model]) for model in models]
    if fuse and len(models) > 1:
        counts = {len(scales) for scales in scales_of.values()}
        if len(counts) > 1:
            raise ValueError("cannot fuse models evaluated at different numbers of test scales: " + "; ".join(
                f"{model} at Q={','.join(map(str, scales_of[model]))}" for model in models))
        groups.append((" + ".join(models), models))

    rows = []

    def add(name, method, members, indices, methods_):
        lists = [[scales_of[member][i] for i in indices] for member in members]
        keys = [(member, protocol, scale) for member, scales in zip(members, lists) for protocol in methods_
                for scale in scales]
        missing = [key for key in keys if key not in by_key]
        if missing:
            raise ValueError(f"no run for {missing[0]}: every model needs every protocol and scale")
        probabilities, labels, speed = _combined([by_key[key] for key in keys])
        rows.append(tables.row(name, method, _scales_shown(lists), probabilities, labels, speed))

    for name, members in groups:
        count = len(scales_of[members[0]])
        for method in methods:
            title = eval_protocols.get(method).method
            for index in range(count):
                add(name, title, members, [index], [method])
            if count > 1:
                add(name, title, members, range(count), [method])
        for combination in eval_protocols.combinations_of(methods):
            add(name, combination.method, members, range(count), list(combination.members))
    return rows
