"""The colours every figure uses, so an instance, a positive or a gt box looks the same in
every picture of the pipeline."""

from matplotlib.colors import to_rgb

# A fixed palette (matplotlib's tab10): instance i always gets PALETTE[i % 10].
PALETTE = tuple(
    to_rgb(c)
    for c in (
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    )
)
POSITIVE_COLOR = to_rgb("#2ca02c")
NEGATIVE_COLOR = to_rgb("#d62728")
GT_COLOR = to_rgb("#ffd700")
MASK_ALPHA = 0.45
CAPTION_ROOM = 0.06  # fraction of the image height a caption needs above a box


def instance_color(i):
    """The RGB colour (floats in [0, 1]) of instance ``i``: ``PALETTE[i % len(PALETTE)]``."""
    return PALETTE[int(i) % len(PALETTE)]
