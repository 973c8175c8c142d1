"""Top-1/top-5 error tables, laid out like VGG's Tables 3-6 and AlexNet's Table 2, with pandas.

Rows: one per model (or fusion of models) and protocol; columns: the test scales Q, top-1 and top-5
error in percent (AlexNet §6: "top-5 error rate is the fraction of test images for which the correct
label is not among the five labels considered most probable by the model"), and images/s.
"""

import os

import numpy as np

COLUMNS = ("model", "evaluation method", "test scale Q", "top-1 val. error (%)", "top-5 val. error (%)",
           "images/s")


def top_k_error(probabilities, labels, k: int) -> float:
    """Percentage of examples whose label is not among the k highest probabilities (ties count as hits)."""
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels).astype(np.int64)
    truth = probabilities[np.arange(len(labels)), labels]
    rank = (probabilities > truth[:, None]).sum(axis=1)  # classes strictly more probable than the label
    return float(100.0 * np.mean(rank >= min(k, probabilities.shape[1])))


def row(model, method, scales, probabilities, labels, images_per_second) -> dict:
    return {
        "model": model,
        "evaluation method": method,
        "test scale Q": ",".join(str(s) for s in scales),
        "top-1 val. error (%)": round(top_k_error(probabilities, labels, 1), 2),
        "top-5 val. error (%)": round(top_k_error(probabilities, labels, 5), 2),
        "images/s": round(float(images_per_second), 1),
    }


def error_table(rows):
    import pandas as pd

    return pd.DataFrame(list(rows), columns=list(COLUMNS))


def to_markdown(table) -> str:
    """A GitHub Markdown table (pandas' own `to_markdown` needs the `tabulate` package)."""
    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" if table[c].dtype == object else "---:" for c in table.columns) + " |"]
    for values in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1e6 else f"{value:.0f}"
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
