"""``draw_loss_curves``: the training log drawn, one line per loss term against the step."""

import numpy as np

from minimask.io.json_numbers import is_real_number
from minimask.io.loss_log import read_loss_log
from minimask.viz.figures import new_figure


def draw_loss_curves(log, keys=None, title=None):
    """Training curves from a log: one line per loss term against the step.

    ``log``: a JSON-lines path or a list of dicts (``read_loss_log``), each with "step" (the
    record's index if missing) and numeric terms. Loss terms are the keys "loss" and
    "loss_*" (or ``keys``); each is drawn from the records that have it (so terms logged at
    different rates work), as a Line2D labelled with the key, in the record order. NaN and
    inf count as numbers: they stay in the line (matplotlib leaves a gap there), so a run
    that diverged shows where. The y axis is logarithmic when every finite value drawn is
    positive (losses fall over decades), linear otherwise. A learning-rate key ("lr", or
    keys starting with "lr") gets a second panel, log-scaled if positive, since warm-up and
    decay steps explain kinks in the losses; other numeric keys (epoch, time, ...) are
    ignored.
    """
    records = read_loss_log(log)
    steps_of = [float(r.get("step", i)) for i, r in enumerate(records)]
    numeric = []
    for r in records:
        for k, v in r.items():
            if k != "step" and is_real_number(v) and k not in numeric:
                numeric.append(k)
    if keys is None:
        keys = [k for k in numeric if k == "loss" or k.startswith("loss_")]
    lr_keys = [k for k in numeric if (k == "lr" or k.startswith("lr")) and k not in keys]
    fig, axes = new_figure(ncols=2 if lr_keys else 1, panel_size=(6.5, 4.5))
    panels = [(axes[0, 0], keys, "loss")]
    if lr_keys:
        panels.append((axes[0, 1], lr_keys, "learning rate"))
    for ax, panel_keys, ylabel in panels:
        _draw_panel(ax, panel_keys, ylabel, records, steps_of)
    axes[0, 0].set_title(f"{len(records)} log records" if title is None else title)
    fig.tight_layout()
    return fig


def _draw_panel(ax, panel_keys, ylabel, records, steps_of):
    """One line per key of ``panel_keys`` (from the records that hold a number for it), on a
    log y axis when every finite value drawn is positive."""
    drawn = []
    for key in panel_keys:
        xs = [s for s, r in zip(steps_of, records) if is_real_number(r.get(key))]
        ys = [float(r[key]) for r in records if is_real_number(r.get(key))]
        ax.plot(xs, ys, label=key, linewidth=1.2)
        drawn.extend(ys)
    finite = np.asarray(drawn, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size and (finite > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    if panel_keys:
        ax.legend(fontsize=8)
