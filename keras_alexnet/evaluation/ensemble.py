"""From the runs of every (model, protocol, test scale) to the rows of the error table.

For each model, and for the fusion of all models when there are several (AlexNet §6: the softmax of
five CNNs averaged; VGG §4.4: "we combine the outputs of several models by averaging their soft-max
class posteriors"), the table has:
- one row per protocol and test scale Q (VGG Table 3 is the dense single-scale case);
- one row per protocol over all scales when there are several (VGG §4.2, Table 4);
- a "dense + multi-crop" row averaging both over all scales when both ran (VGG §4.3, Table 5).
Every combination averages softmax outputs (`protocols.average`); images/s is the number of images
divided by the time of all the passes the row needed.
"""

from keras_alexnet.evaluation import protocols, tables

METHOD_NAMES = {
    "center": "centre crop",
    "ten_crop": "10 crops",
    "multi_crop": "multi-crop (50/scale)",
    "dense": "dense",
}
DENSE_AND_MULTI_CROP = "dense + multi-crop"


def _unique(values):
    return list(dict.fromkeys(values))


def _combined(runs):
    probabilities, labels = protocols.average(runs)
    seconds = sum(run.seconds for run in runs)
    return probabilities, labels, (len(labels) / seconds if seconds > 0 else float("inf"))


def table_rows(runs) -> list:
    """The error-table rows (dicts with `tables.COLUMNS`) for `runs`, in the order described above."""
    runs = list(runs)
    by_key = {(run.model, run.protocol, run.scale): run for run in runs}
    models = _unique(run.model for run in runs)
    methods = _unique(run.protocol for run in runs)
    scales = _unique(run.scale for run in runs)
    groups = [(model, [model]) for model in models]
    if len(models) > 1:
        groups.append((" + ".join(models), models))

    rows = []

    def add(name, method, used_scales, selected):
        missing = [key for key, run in selected if run is None]
        if missing:
            raise ValueError(f"no run for {missing[0]}: every model needs every protocol and scale")
        probabilities, labels, speed = _combined([run for _, run in selected])
        rows.append(tables.row(name, method, used_scales, probabilities, labels, speed))

    def pick(members, methods_, scales_):
        keys = [(m, p, q) for m in members for p in methods_ for q in scales_]
        return [(key, by_key.get(key)) for key in keys]

    for name, members in groups:
        for method in methods:
            for scale in scales:
                add(name, METHOD_NAMES[method], [scale], pick(members, [method], [scale]))
            if len(scales) > 1:
                add(name, METHOD_NAMES[method], scales, pick(members, [method], scales))
        if "dense" in methods and "multi_crop" in methods:
            add(name, DENSE_AND_MULTI_CROP, scales, pick(members, ["dense", "multi_crop"], scales))
    return rows
