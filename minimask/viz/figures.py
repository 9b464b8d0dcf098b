"""Figures without pyplot: making one, drawing an image and boxes in pixel coordinates, and
saving it as a PNG.

``Figure()`` with an Agg canvas is never registered in pyplot's list of open figures, so a
loop that draws a thousand figures does not leak them, and no window is ever opened.
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minimask.io.atomic import atomic_write
from minimask.viz.inputs import image_hwc


def new_figure(ncols=1, nrows=1, panel_size=(6.0, 6.0)):
    """A Figure with an Agg canvas (no pyplot) and its (nrows, ncols) array of Axes, each
    panel ``panel_size`` = (width, height) inches."""
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def image_panel_size(height, width, base=6.0):
    """(width, height) inches of a panel showing an H x W image: ``base`` wide, as tall as
    the image's aspect asks, between 2 and 2.5 * base inches."""
    aspect = height / max(width, 1)
    return base, float(np.clip(base * aspect, 2.0, 2.5 * base))


def prepare_image_axes(ax, image, image_size=None):
    """(fig, ax, H, W): a new or the given Axes with ``image`` drawn at extent (0, W, H, 0)
    (gid "image"), or an empty canvas of ``image_size`` = (H, W) when image is None."""
    img = None if image is None else image_hwc(image)
    if img is not None:
        height, width = img.shape[:2]
    elif image_size is not None:
        height, width = int(image_size[0]), int(image_size[1])
    else:
        raise ValueError("give an image or an image_size (H, W)")
    if ax is None:
        fig, axes = new_figure(panel_size=image_panel_size(height, width))
        ax = axes[0, 0]
    else:
        fig = ax.figure
    if img is not None:
        ax.imshow(img, extent=(0, width, height, 0), interpolation="nearest", gid="image")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    return fig, ax, height, width


def add_box(ax, box, color, gid, linewidth=1.5, linestyle="-", alpha=1.0, label=None):
    """Draw box (x1, y1, x2, y2) as an unfilled Rectangle with exactly its corners; returns
    the patch (gid ``gid``)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    rect = Rectangle(
        (x1, y1),
        x2 - x1,
        y2 - y1,
        fill=False,
        edgecolor=color,
        linewidth=linewidth,
        linestyle=linestyle,
        alpha=alpha,
        gid=gid,
        label=label,
    )
    ax.add_patch(rect)
    return rect


def fit_limits(ax, height, width, boxes, margin=0.05):
    """Widen the (inverted-y) limits to hold [0, W] x [0, H] and every box."""
    x0, y0, x1, y1 = 0.0, 0.0, float(width), float(height)
    if boxes is not None and len(boxes):
        x0 = min(x0, float(boxes[:, 0].min()))
        y0 = min(y0, float(boxes[:, 1].min()))
        x1 = max(x1, float(boxes[:, 2].max()))
        y1 = max(y1, float(boxes[:, 3].max()))
    pad = margin * max(x1 - x0, y1 - y0)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y1 + pad, y0 - pad)


def save_figure(fig, path, dpi=100):
    """Write ``fig`` as a PNG at ``path`` (dpi 100 by default), atomically (``atomic_write``:
    a reader, or a crash, never sees half a file; the folder is created). Returns ``path``
    as a string."""
    path = os.fspath(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path
