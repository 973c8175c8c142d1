"""Top-1/top-5 error tables, laid out like VGG's Tables 3-6 and AlexNet's Table 2, with pandas.

Rows: one per model (or fusion of models) and protocol; columns: the test scales Q, top-1 and top-5
error in percent (AlexNet §6: "top-5 error rate is the fraction of test images for which the correct
label is not among the five labels considered most probable by the model"), and images/s. The error
columns name the split evaluated ("top-1 val. error (%)" as in VGG's tables, "top-1 test error (%)").
"""

import os

import numpy as np

from keras_alexnet import metric_names

COLUMNS = ("model", "evaluation method", "test scale Q", "top-1 val. error (%)", "top-5 val. error (%)",
           "images/s")  # the keys of `row`; `error_table` names the split in the headings


def split_columns(split: str) -> dict:
    """The error headings for `split`: {"top-1 val. error (%)": "top-1 <split> error (%)", ...}."""
    name = "val." if split == "validation" else split
    return {f"top-{k} val. error (%)": f"top-{k} {name} error (%)" for k in (1, 5)}


def missed_fraction(probabilities, labels, k: int) -> float:
    """The fraction of examples whose label is not among the k most probable classes, by training's
    rule (`keras_alexnet.metrics.missed`: a tie with the label is a miss), so a model that outputs the
    same probability for every class is wrong on every label, as training reports it."""
    from keras_alexnet.metrics import missed

    return float(np.mean(missed(np.asarray(labels), np.asarray(probabilities), k).numpy(), dtype=np.float64))


def top_k_error(probabilities, labels, k: int) -> float:
    """`missed_fraction` in percent: the tables' top-k error."""
    return 100.0 * missed_fraction(probabilities, labels, k)


def errors(probabilities, labels) -> dict:
    """{"top1_error", "top5_error" (fractions), "count"}: what training, the 10-crop callback and the
    studies record."""
    return {**{metric_names.error_name(k): missed_fraction(probabilities, labels, k) for k in metric_names.TOP_K},
            metric_names.COUNT: int(len(labels))}


def row(model, method, scales, probabilities, labels, images_per_second) -> dict:
    return {
        "model": model,
        "evaluation method": method,
        "test scale Q": ",".join(str(s) for s in scales),
        "top-1 val. error (%)": round(top_k_error(probabilities, labels, 1), 2),
        "top-5 val. error (%)": round(top_k_error(probabilities, labels, 5), 2),
        "images/s": round(float(images_per_second), 1),
    }


def error_table(rows, split: str = "validation"):
    """The rows (`row` dicts) as a pandas table whose error headings name `split`."""
    import pandas as pd

    return pd.DataFrame(list(rows), columns=list(COLUMNS)).rename(columns=split_columns(split))


def to_markdown(table) -> str:
    """A GitHub Markdown table (pandas' own `to_markdown` needs the `tabulate` package): numbers
    right-aligned, errors with two decimals, images/s with one."""
    import pandas as pd

    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    lines = ["| " + " | ".join(str(c) for c in table.columns) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    for values in table.itertuples(index=False):
        cells = [_cell(v, column) for v, column in zip(values, table.columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value, column) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.1f}" if column == "images/s" else f"{value:.2f}"
    return str(value).replace("|", "\\|")


def write_table(table, out_dir: str, stem: str = "errors") -> tuple:
    """Writes `<stem>.csv` and `<stem>.md` into `out_dir`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, f"{stem}.csv")
    md_path = os.path.join(out_dir, f"{stem}.md")
    table.to_csv(csv_path, index=False)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(to_markdown(table))
    return csv_path, md_path
