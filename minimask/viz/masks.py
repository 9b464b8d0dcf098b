"""``draw_mask_targets``: the mask head's M x M training targets beside its predictions."""

import numpy as np

from minimask.viz.figures import new_figure
from minimask.viz.inputs import to_numpy


def draw_mask_targets(targets, predictions=None, max_masks=16, pairs_per_row=4, title=None):
    """The mask head's M x M targets, each beside its predicted mask.

    targets (P, M, M) or (P, 1, M, M) in [0, 1] (``minimask.models.masks.mask_targets``);
    predictions the same shape, probabilities (apply sigmoid to logits first). The first
    ``max_masks`` are drawn, ``pairs_per_row`` (target, prediction) pairs per row, in gray
    with vmin 0 and vmax 1 (Axes titled "target i" / "pred i", images gid "target" /
    "prediction").

    The student sees that the target is the object's mask resampled into the proposal's
    box (so a loose proposal gives a small or cut-off object, and the border cells are
    fractional, not 0/1), and how close the prediction comes.
    """
    targets = np.asarray(to_numpy(targets), dtype=np.float64)
    if targets.ndim == 4:
        targets = targets[:, 0]
    if targets.ndim != 3:
        raise ValueError(f"targets must be (P, M, M) or (P, 1, M, M), got {targets.shape}")
    preds = to_numpy(predictions)
    if preds is not None:
        preds = np.asarray(preds, dtype=np.float64)
        if preds.ndim == 4:
            preds = preds[:, 0]
        if preds.shape != targets.shape:
            raise ValueError(
                f"predictions {preds.shape} and targets {targets.shape} differ in shape"
            )
    n = min(len(targets), int(max_masks))
    per_pair = 2 if preds is not None else 1
    pairs = max(min(n, int(pairs_per_row)), 1)
    rows = max(-(-n // pairs), 1)
    fig, axes = new_figure(ncols=pairs * per_pair, nrows=rows, panel_size=(1.8, 1.9))
    for ax in axes.flat:
        ax.set_axis_off()
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no masks", ha="center", va="center")
    for i in range(n):
        r, c = divmod(i, pairs)
        ax = axes[r, c * per_pair]
        ax.imshow(
            targets[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", gid="target"
        )
        ax.set_title(f"target {i}", fontsize=8)
        if preds is not None:
            ax = axes[r, c * per_pair + 1]
            ax.imshow(
                preds[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", gid="prediction"
            )
            ax.set_title(f"pred {i}", fontsize=8)
    if title is None:
        title = f"{n} of {len(targets)} mask targets" + (
            " beside predictions" if preds is not None else ""
        )
    fig.suptitle(title)
    return fig
