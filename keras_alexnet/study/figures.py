"""A study's figures (PNG, matplotlib without a display):

- `training_curves`: the training top-1 error per epoch of every trained arm (thin: each seed, thick: the
  mean over seeds), the threshold of AlexNet Figure 1 as a dotted line, ReLU solid and tanh dashed as in
  the paper's figure;
- `differences`: each arm's difference to its reference with its 95% interval (top-1 and top-5 panels),
  the paper's own figure for the same difference just below it (a cross).
"""

import math

from keras_alexnet import metric_names


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(study, results: dict, threshold: float, path: str) -> str:
    """Training top-1 error per epoch for every trained arm (AlexNet Figure 1's axes), with `threshold`
    when an arm is measured by it; returns `path`."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, arm in enumerate(study.trained_arms()):
        curves = [result["history"].get(metric_names.TOP1_ERROR, []) for (name, _), result in sorted(results.items())
                  if name == arm.name]
        curves = [c for c in curves if c]
        if not curves:
            continue
        colour = colours[index % len(colours)]
        style = "--" if arm.overlay.get("activation") == "tanh" else "-"
        for curve in curves:
            axis.plot(range(1, len(curve) + 1), [100 * v for v in curve], style, color=colour, alpha=0.3,
                      linewidth=0.8)
        length = min(len(c) for c in curves)
        mean = [100 * sum(c[e] for c in curves) / len(curves) for e in range(length)]
        axis.plot(range(1, length + 1), mean, style, color=colour, linewidth=2, label=f"{arm.name} (n={len(curves)})")
    if any(arm.measure == "epochs_to_error" for arm in study.arms):
        axis.axhline(100 * threshold, color="grey", linestyle=":", linewidth=1,
                     label=f"{100 * threshold:g}% (AlexNet Figure 1's 25% at this scale)")
    axis.set_xlabel("epochs")
    axis.set_ylabel("training top-1 error (%)")
    axis.set_title(f"study {study.name}: training error per epoch")
    axis.legend(fontsize=7)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def differences(table: list, path: str):
    """Arm − reference with 95% intervals, the paper's figure beside each; returns `path` (None: nothing to
    draw)."""
    panels = [metric for metric in ("top-1 error (%)", "top-5 error (%)")
              if any(r["metric"] == metric and r["difference"] is not None for r in table)]
    if not panels:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.5 + 0.45 * len(table)), squeeze=False)
    for axis, metric in zip(axes[0], panels):
        chosen = [r for r in table if r["metric"] == metric and r["difference"] is not None]
        for position, row in enumerate(chosen):
            if row["ci_low"] is not None:
                axis.plot([row["ci_low"], row["ci_high"]], [position, position], color="C0", linewidth=2)
            axis.plot(row["difference"], position, "o", color="C0", label="measured (95% interval)"
                      if position == 0 else None)
            if row["paper_difference"] is not None and not math.isnan(row["paper_difference"]):
                axis.plot(row["paper_difference"], position + 0.25, "x", color="C3", markersize=8,
                          label="paper" if not any(r["paper_difference"] is not None for r in chosen[:position])
                          else None)
        axis.axvline(0, color="grey", linewidth=0.8)
        axis.set_yticks(range(len(chosen)))
        axis.set_yticklabels([f"{r['arm']} vs {r['reference'].split(' ')[0]}" for r in chosen], fontsize=8)
        axis.invert_yaxis()
        axis.set_xlabel(f"difference in {metric}")
        axis.legend(fontsize=7, loc="best")
        axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
