"""A study's report from its runs on disk: per arm the claim's measure as mean ± std over seeds with n, the
difference to its reference with a 95% interval, the paper's figure and section beside it, and a verdict in
words (`statistics.verdict`). Written as `report.csv` and `report.md` in the study folder.

Every arm is compared with its reference seed by seed (`statistics.paired_interval`, over the seeds both
have): the same seed gives both the same data order and augmentation, and an evaluation-only arm the same
trained models. "epochs_to_error" (AlexNet Figure 1):
the first crossing of the threshold by the per-epoch training top-1 error, linearly interpolated between
epochs, starting from chance level at epoch 0; a run that never reaches it counts as its last epoch (a lower
bound, flagged in the table).
"""

import csv
import math
import os
from typing import Optional

from keras_alexnet import atomic, metric_names
from keras_alexnet.study import statistics
from keras_alexnet.study.definitions import Arm, Study

ERROR_METRICS = tuple((f"top-{k} error (%)", metric_names.error_name(k), f"top{k}") for k in metric_names.TOP_K)
COLUMNS = ("arm", "description", "measure", "metric", "n", "mean", "std", "reference", "difference", "ci_low",
           "ci_high", "pairs", "ratio", "paper_difference", "paper", "section", "verdict", "note")


def epochs_to_error(errors, threshold: float, chance: float) -> tuple:
    """(epochs, reached): the first epoch count at which the training error `errors[e]` (after epoch e + 1)
    reaches `threshold`, interpolated linearly from (0, chance); (len(errors), False) when never reached."""
    previous_epoch, previous = 0.0, chance
    for epoch, error in enumerate(errors, start=1):
        if error <= threshold:
            if previous <= threshold:  # chance itself below the threshold: reached at once
                return float(previous_epoch), True
            return previous_epoch + (previous - threshold) / (previous - error), True
        previous_epoch, previous = float(epoch), error
    return float(len(errors)), False


def metric_label(threshold: float) -> str:
    return f"epochs to {100 * threshold:g}% training error"


def run_values(result: dict, measure: str, threshold: float) -> dict:
    """{metric label: (value, note)} of one run under `measure`."""
    if measure == "epochs_to_error":
        chance = 1.0 - 1.0 / result.get("num_classes", 10)
        epochs, reached = epochs_to_error(result["history"].get(metric_names.TOP1_ERROR, []), threshold, chance)
        return {metric_label(threshold): (epochs, "" if reached else "not reached")}
    values = result["measures"].get(measure)
    if values is None:
        return {}
    return {label: (100.0 * values[key], "") for label, key, _ in ERROR_METRICS}


def _arm_values(arm: Arm, results: dict, measure: str, threshold: float) -> dict:
    """{metric: {seed: (value, note)}} of the runs `arm` measures."""
    values = {}
    for (name, seed), result in sorted(results.items()):
        if name == arm.runs_of:
            for metric, value in run_values(result, measure, threshold).items():
                values.setdefault(metric, {})[seed] = value
    return values


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def rows(study: Study, results: dict, threshold: float) -> list:
    """The report's rows: one per arm and metric (see `COLUMNS`); `threshold`: the scale's training error
    of "epochs_to_error"."""
    table = []
    for arm in study.arms:
        reference = study.reference_of(arm) if arm is not study.baseline else None
        measured = _arm_values(arm, results, arm.measure, threshold)
        compared = (_arm_values(reference, results, arm.reference_measure or arm.measure, threshold)
                    if reference else {})
        for metric, by_seed in measured.items():
            values = [v for v, _ in by_seed.values()]
            summary = statistics.summary(values)
            missed = sum(1 for _, note in by_seed.values() if note)
            row = {"arm": arm.name, "description": arm.description, "measure": arm.measure, "metric": metric,
                   "n": summary.n, "mean": summary.mean, "std": summary.std, "reference": "", "difference": None,
                   "ci_low": None, "ci_high": None, "pairs": 0, "ratio": None, "paper_difference": None,
                   "paper": "", "section": "", "verdict": "",
                   "note": f"{missed} of {summary.n} runs did not reach it (counted as their last epoch)"
                   if missed else ""}
            if reference is not None and metric in compared:
                ref_by_seed = compared[metric]
                seeds = sorted(set(by_seed) & set(ref_by_seed))
                mine, theirs = [by_seed[s][0] for s in seeds], [ref_by_seed[s][0] for s in seeds]
                difference = statistics.paired_interval(mine, theirs)
                row.update(reference=f"{reference.name} ({arm.reference_measure or arm.measure})",
                           difference=difference.estimate, ci_low=difference.low, ci_high=difference.high,
                           pairs=len(seeds), ratio=sum(mine) / sum(theirs) if seeds and sum(theirs) else None)
                if arm.claim is not None:
                    key = {label: short for label, _, short in ERROR_METRICS}.get(metric)
                    row.update(paper_difference=getattr(arm.claim, key) if key else None, paper=arm.claim.paper,
                               section=arm.claim.section,
                               verdict=statistics.verdict(difference, arm.claim.sign, arm.claim.margin))
            table.append(row)
    return table


def write_csv(table: list, path: str) -> str:
    with atomic.replacing(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in table:
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
    return path


def markdown(table: list) -> str:
    """The table as GitHub Markdown: mean ± std (n), difference [95% interval], the paper, the verdict."""
    lines = ["| arm | measure | n | mean ± std | vs | arm − vs [95% interval] | paper (arm − vs) | section | verdict |",
             "| --- | --- | ---: | ---: | --- | ---: | --- | --- | --- |"]
    for row in table:
        spread = f" ± {_fmt(row['std'])}" if row["n"] > 1 else ""
        difference = ""
        if row["difference"] is not None:
            interval = (f" [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]" if row["ci_low"] is not None else "")
            difference = f"{row['difference']:+.2f}{interval}"
            if row["pairs"] != row["n"]:
                difference += f" ({row['pairs']} seeds paired)"
            if row["measure"] == "epochs_to_error" and row["ratio"]:
                difference += f" (ratio {row['ratio']:.2f})"
        paper = row["paper"]
        if row["paper_difference"] is not None:
            paper = f"{row['paper_difference']:+.1f}: {paper}"
        note = f" ({row['note']})" if row["note"] else ""
        lines.append(f"| {row['arm']} | {row['metric']}, {row['measure']} | {row['n']} | {_fmt(row['mean'])}{spread}"
                     f"{note} | {row['reference']} | {difference} | {paper} | {row['section']} | {row['verdict']} |")
    return "\n".join(lines) + "\n"


def write_report(study: Study, study_dir: str, results: dict, threshold: float, header: str = "") -> tuple:
    """Writes report.csv, report.md and the figures into `study_dir`; returns (markdown text, paths)."""
    from keras_alexnet.study import figures

    table = rows(study, results, threshold)
    csv_path = write_csv(table, os.path.join(study_dir, "report.csv"))
    text = (header + "\n\n" if header else "") + markdown(table) + (
        "\nErrors in percent on the held-out validation split; 'vs' is the arm's reference; intervals are 95% t "
        "intervals of the per-seed differences (arm and reference share each seed's data order and augmentation). "
        "A claim counts as seen only when its interval excludes 0 in the paper's direction"
        + ("; a claim that an arm is not worse holds only when the interval's upper end is at most its margin"
           if any(arm.claim is not None and arm.claim.sign == 0 for arm in study.arms) else "") + ".\n")
    md_path = os.path.join(study_dir, "report.md")
    atomic.write_text(md_path, text)
    paths = [csv_path, md_path]
    paths.append(figures.training_curves(study, results, threshold, os.path.join(study_dir, "training_error.png")))
    differences = figures.differences(table, os.path.join(study_dir, "differences.png"))
    if differences:
        paths.append(differences)
    return text, paths
