"""RoIAlign drawn: where the kernel samples a box and which feature cells each sample reads.

The geometry is not re-derived here: the box's grid (``roi_geometry``), every sample's
position (``sample_position``) and the border rule (``outside_map``, ``bilinear_corners``)
are the functions in ``minimask.geometry.roi_align`` that the CPU and CUDA kernels are
compiled from, called as plain Python. So the picture shows the points the kernel samples,
and a test can check the drawing against ``minimask.ops.roi_align`` bin for bin.

Coordinates are the kernel's: feature cell (i, j) holds its value at y = i, x = j, and the
feature map is drawn with matplotlib's default extent (cell (i, j) covers
[j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]), so every point plots at the exact coordinate the
kernel computes.
"""

from typing import NamedTuple

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle

from minimask.geometry.roi_align import (
    bilinear_corners,
    outside_map,
    roi_geometry,
    sample_position,
)
from minimask.viz.figures import image_panel_size, new_figure
from minimask.viz.inputs import to_numpy


class _BoxGrid(NamedTuple):
    """One box as RoIAlign sees it, in feature-map cell units: its top-left corner, size,
    bin size, samples per bin and output size."""

    start_h: float
    start_w: float
    roi_h: float
    roi_w: float
    bin_h: float
    bin_w: float
    grid_h: int
    grid_w: int
    pooled_h: int
    pooled_w: int


def _box_grid(box, output_size, spatial_scale, sampling_ratio, aligned):
    """The ``_BoxGrid`` of box (x1, y1, x2, y2) (or (batch_index, x1, y1, x2, y2)), from the
    kernels' own ``roi_geometry``."""
    box = np.asarray(to_numpy(box), dtype=np.float64).reshape(-1)
    if box.shape[0] == 5:  # (batch_index, x1, y1, x2, y2)
        box = box[1:]
    if box.shape[0] != 4:
        raise ValueError(f"box must be (x1, y1, x2, y2), got shape {box.shape}")
    pooled_h, pooled_w = (
        (int(output_size), int(output_size))
        if np.isscalar(output_size)
        else (int(output_size[0]), int(output_size[1]))
    )
    roi = np.concatenate([[0.0], box])
    _, start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry(
        roi, float(spatial_scale), pooled_h, pooled_w, int(sampling_ratio), bool(aligned)
    )
    roi_h, roi_w = bin_h * pooled_h, bin_w * pooled_w
    return _BoxGrid(
        start_h, start_w, roi_h, roi_w, bin_h, bin_w, grid_h, grid_w, pooled_h, pooled_w
    )


def roi_align_sample_points(box, output_size, spatial_scale=1.0, sampling_ratio=2, aligned=True):
    """The positions RoIAlign samples for one box: array (PH, PW, grid_h, grid_w, 2) of
    (y, x) float64 in feature-map cell units (cell (i, j) at y = i, x = j).

    box (x1, y1, x2, y2) in image pixels (or (batch_index, x1, y1, x2, y2)); the other
    arguments as ``minimask.ops.roi_align``. Every position is the kernels' own
    ``sample_position``, evaluated on broadcast index arrays:

        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w

    so output bin (ph, pw) of roi_align is the mean over (iy, ix) of the bilinear value at
    these points (``bilinear_neighbours``); in adaptive mode (sampling_ratio <= 0)
    grid_h = ceil(roi_h / PH) may differ from grid_w, and is 0 for an empty aligned box (the
    bin is then 0).
    """
    g = _box_grid(box, output_size, spatial_scale, sampling_ratio, aligned)
    ph = np.arange(g.pooled_h, dtype=np.float64)[:, None, None, None]
    pw = np.arange(g.pooled_w, dtype=np.float64)[None, :, None, None]
    iy = np.arange(g.grid_h, dtype=np.float64)[None, None, :, None]
    ix = np.arange(g.grid_w, dtype=np.float64)[None, None, None, :]
    y = sample_position(g.start_h, ph, g.bin_h, iy, g.grid_h)
    x = sample_position(g.start_w, pw, g.bin_w, ix, g.grid_w)
    shape = (g.pooled_h, g.pooled_w, g.grid_h, g.grid_w)
    return np.stack([np.broadcast_to(y, shape), np.broadcast_to(x, shape)], axis=-1)


def bilinear_neighbours(y, x, height, width):
    """The feature cells a bilinear sample at (y, x) reads, by RoIAlign's border rule.

    Returns (cells, weights): cells int64 (4, 2) of (row, column) in the kernel's order
    (y_low, x_low), (y_low, x_high), (y_high, x_low), (y_high, x_high), and their weights
    (4,) float64 (summing to 1); the sample's value is sum(weights * f[cells[:, 0],
    cells[:, 1]]). The kernels' own ``outside_map`` and ``bilinear_corners``
    (torchvision's ``bilinear_interpolate``): a sample with y < -1 or y > H (or x < -1 or
    x > W) reads nothing and is 0 (cells (0, 2), weights (0,)); otherwise y <= 0 is clamped
    to 0 and y_low >= H - 1 to y_low = y_high = H - 1 (same for x), so within one cell
    outside the map the edge value repeats and the 4 cells may coincide.
    """
    y, x = float(y), float(x)
    height, width = int(height), int(width)
    if outside_map(y, x, height, width):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    y_low, x_low, y_high, x_high, *weights = bilinear_corners(y, x, height, width)
    cells = np.array(
        [[y_low, x_low], [y_low, x_high], [y_high, x_low], [y_high, x_high]], dtype=np.int64
    )
    return cells, np.array(weights)


def draw_roi_align_grid(
    feature_map,
    box,
    output_size,
    spatial_scale=1.0,
    sampling_ratio=2,
    aligned=True,
    bin=(0, 0),
    ax=None,
    title=None,
):
    """RoIAlign's sampling of one box, drawn on the feature map it samples.

    feature_map (H, W) (or (C, H, W): the first channel is drawn); box (x1, y1, x2, y2) in
    image pixels; the rest as ``minimask.ops.roi_align``; ``bin`` = (ph, pw) the bin to
    highlight. Coordinates are the kernel's (see the module docstring). The student sees:

    - the box as the kernel sees it (Rectangle gid "roi"): scaled by spatial_scale and, when
      aligned, shifted by -0.5 cell, so an image-pixel box edge at 0 lands on the map's
      left border -0.5; unaligned, at least 1 x 1 cell;
    - the PH x PW bin grid (lines gid "bin grid"), which cuts through cells: no rounding,
      the point of RoIAlign against RoIPool;
    - every sample point of every bin (scatter gid "samples", in (ph, pw, iy, ix) order,
      offsets (x, y) from `roi_align_sample_points`); those outside [-1, H] x [-1, W] (the
      dashed rectangle gid "zero border") read nothing and count as 0, crossed out (scatter
      gid "zero samples");
    - the chosen bin's samples enlarged (scatter gid "bin samples") and, for each that is
      not 0, the 4 cells its bilinear interpolation reads (scatter gid "neighbours" at the
      cell centres (x_col, y_row), 4 per sample in the kernel's order, clamped at the
      border as the kernel clamps them, so repeats show the edge being copied) joined to
      the sample by lines as thick as their weight (LineCollection gid "neighbour links").

    The title gives the bin's value, the mean of its samples: roi_align's output there.
    """
    fm = _feature_plane(feature_map)
    height, width = fm.shape
    g = _box_grid(box, output_size, spatial_scale, sampling_ratio, aligned)
    ph, pw = int(bin[0]), int(bin[1])
    if not (0 <= ph < g.pooled_h and 0 <= pw < g.pooled_w):
        raise ValueError(f"bin {bin} is outside the {g.pooled_h}x{g.pooled_w} output")
    points = roi_align_sample_points(box, output_size, spatial_scale, sampling_ratio, aligned)
    if ax is None:
        fig, axes = new_figure(panel_size=image_panel_size(height + 2, width + 2, base=7.0))
        ax = axes[0, 0]
    else:
        fig = ax.figure
    ax.imshow(fm, cmap="viridis", interpolation="nearest", gid="feature map")
    _draw_roi_and_bins(ax, g, ph, pw, height, width)
    _draw_samples(ax, points.reshape(-1, 2), height, width)
    total = _draw_bilinear_reads(ax, fm, points[ph, pw].reshape(-1, 2))
    value = total / max(g.grid_h * g.grid_w, 1)
    _show_map_and_box(ax, g, height, width)
    if title is None:
        title = (
            f"RoIAlign {g.pooled_h}x{g.pooled_w}, {g.grid_h}x{g.grid_w} samples per bin"
            f"{' (adaptive)' if sampling_ratio <= 0 else ''}, aligned={bool(aligned)}\n"
            f"bin ({ph}, {pw}) = mean of its samples = {value:.4g}"
        )
    ax.set_title(title, fontsize=9)
    return fig


def _feature_plane(feature_map):
    """A 2-D (H, W) float64 plane: leading axes of size 1 are dropped, then the first
    channel of a remaining (C, H, W) is taken."""
    fm = np.asarray(to_numpy(feature_map), dtype=np.float64)
    while fm.ndim > 2 and fm.shape[0] == 1:
        fm = fm[0]
    while fm.ndim > 2:
        fm = fm[0]
    if fm.ndim != 2:
        raise ValueError(f"feature_map must be (H, W) (or (C, H, W)), got {fm.shape}")
    return fm


def _draw_roi_and_bins(ax, g, ph, pw, height, width):
    """The dashed border beyond which samples are 0 (gid "zero border"), the box (gid "roi"),
    its PH x PW bin grid (gid "bin grid") and the chosen bin (ph, pw) shaded (gid "chosen
    bin")."""
    ax.add_patch(
        Rectangle(
            (-1.0, -1.0),
            width + 1.0,
            height + 1.0,
            fill=False,
            edgecolor="gray",
            linestyle="--",
            linewidth=1.0,
            gid="zero border",
        )
    )
    ax.add_patch(
        Rectangle(
            (g.start_w, g.start_h),
            g.roi_w,
            g.roi_h,
            fill=False,
            edgecolor="white",
            linewidth=2.0,
            gid="roi",
        )
    )
    grid_segments = [
        [(g.start_w, g.start_h + i * g.bin_h), (g.start_w + g.roi_w, g.start_h + i * g.bin_h)]
        for i in range(g.pooled_h + 1)
    ] + [
        [(g.start_w + j * g.bin_w, g.start_h), (g.start_w + j * g.bin_w, g.start_h + g.roi_h)]
        for j in range(g.pooled_w + 1)
    ]
    ax.add_collection(
        LineCollection(grid_segments, colors="white", linewidths=0.8, alpha=0.8, gid="bin grid")
    )
    ax.add_patch(
        Rectangle(
            (g.start_w + pw * g.bin_w, g.start_h + ph * g.bin_h),
            g.bin_w,
            g.bin_h,
            facecolor="orange",
            alpha=0.25,
            edgecolor="orange",
            gid="chosen bin",
        )
    )


def _draw_samples(ax, flat, height, width):
    """Every sample point, ``flat`` (N, 2) of (y, x) (scatter gid "samples"), and those
    outside [-1, H] x [-1, W], which read nothing, crossed out (scatter gid "zero
    samples")."""
    ax.scatter(
        flat[:, 1],
        flat[:, 0],
        s=10,
        c="white",
        edgecolors="black",
        linewidths=0.5,
        gid="samples",
        zorder=3,
    )
    outside = np.array([outside_map(y, x, height, width) for y, x in flat], dtype=bool)
    if outside.any():
        ax.scatter(
            flat[outside, 1],
            flat[outside, 0],
            s=30,
            c="red",
            marker="x",
            gid="zero samples",
            zorder=6,
        )


def _draw_bilinear_reads(ax, fm, chosen):
    """The chosen bin's samples ``chosen`` (N, 2) of (y, x) enlarged (gid "bin samples"),
    the cells each reads (gid "neighbours") and links as thick as their weights (gid
    "neighbour links"). Returns the sum of the samples' bilinear values."""
    height, width = fm.shape
    ax.scatter(
        chosen[:, 1],
        chosen[:, 0],
        s=50,
        c="orange",
        edgecolors="black",
        gid="bin samples",
        zorder=5,
    )
    neighbour_xy, links, link_widths = [], [], []
    total = 0.0
    for y, x in chosen:
        cells, weights = bilinear_neighbours(y, x, height, width)
        total += float(np.sum(weights * fm[cells[:, 0], cells[:, 1]]))
        for (row, col), w in zip(cells, weights):
            neighbour_xy.append((col, row))
            links.append([(x, y), (col, row)])
            link_widths.append(0.5 + 3.0 * w)
    neighbour_xy = np.array(neighbour_xy, dtype=np.float64).reshape(-1, 2)
    ax.scatter(
        neighbour_xy[:, 0],
        neighbour_xy[:, 1],
        s=60,
        facecolors="none",
        edgecolors="red",
        linewidths=1.5,
        gid="neighbours",
        zorder=4,
    )
    ax.add_collection(
        LineCollection(
            links, colors="red", linewidths=link_widths, alpha=0.7, gid="neighbour links"
        )
    )
    return total


def _show_map_and_box(ax, g, height, width):
    """Limits that show the zero border around the map and the whole box, at equal scale."""
    xs = [-1.5, width + 0.5, g.start_w, g.start_w + g.roi_w]
    ys = [-1.5, height + 0.5, g.start_h, g.start_h + g.roi_h]
    pad = 0.5
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    ax.set_ylim(max(ys) + pad, min(ys) - pad)
    ax.set_aspect("equal")
