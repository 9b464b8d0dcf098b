"""Pictures of what Mask R-CNN does, one figure per step of the pipeline.

Every function takes minimask Tensors or NumPy arrays, draws with plain matplotlib artists
(``Rectangle`` patches, ``imshow`` images, ``scatter`` collections, ``text``) and returns a
``matplotlib.figure.Figure``. Figures are made with ``Figure()`` directly, never through
``pyplot``, so nothing is registered in pyplot's global list of open figures (a loop that
draws a thousand figures does not leak them) and no window is ever opened: the code works
with the Agg backend, in a notebook (display the returned figure) or on a headless server
(``save_figure(fig, "out.png")``).

Artists carry a ``gid`` naming what they show ("box", "mask", "label", "anchor", "samples",
...), so a notebook or a test can find the drawn data again, e.g.
``[p for p in ax.patches if p.get_gid() == "box"]``.

Coordinates. Boxes are (x1, y1, x2, y2) in image pixels, width x2 - x1 (the project's
convention): pixel (row i, column j) covers [j, j + 1] x [i, i + 1], so an image is drawn
with ``extent=(0, W, H, 0)`` and a box's Rectangle has exactly the box's corners. The
exception is `draw_roi_align_grid`, which draws a feature map in RoIAlign's own coordinates
(cell (i, j) centred at (x=j, y=i), matplotlib's default extent), see there.
"""

import json
import os
import secrets

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from minimask.cpu.roi_align import bilinear_corners, outside_map, roi_geometry

__all__ = [
    "PALETTE",
    "instance_color",
    "draw_instances",
    "draw_anchors",
    "draw_anchors_at",
    "draw_matched_anchors",
    "draw_proposals",
    "draw_sampled_rois",
    "roi_align_sample_points",
    "bilinear_neighbours",
    "draw_roi_align_grid",
    "draw_mask_targets",
    "read_loss_log",
    "draw_loss_curves",
    "save_figure",
]

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


# ---------------------------------------------------------------------------- helpers
def _to_numpy(x):
    """A NumPy array from a minimask Tensor (or anything with ``.numpy()``), array or list;
    None stays None."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy") and callable(x.numpy):
        if hasattr(x, "detach"):
            x = x.detach()
        return np.asarray(x.numpy())
    return np.asarray(x)


def _boxes(x, name):
    """(N, 4) float64 boxes, or None."""
    x = _to_numpy(x)
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return np.zeros((0, 4))
    if x.ndim == 1 and x.shape[0] == 4:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) of (x1, y1, x2, y2), got {x.shape}")
    return x


def _image_hwc(image):
    """An (H, W, 3) float image in [0, 1] from [3, H, W] / [1, H, W] floats in [0, 1],
    (H, W, 3) uint8 or floats, or a gray (H, W); a leading batch axis of 1 is dropped."""
    img = _to_numpy(image)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 2:
        img = img[:, :, None]
    elif img.ndim == 3:
        channels_last = img.shape[2] in (1, 3, 4) and (
            img.dtype == np.uint8 or img.shape[0] not in (1, 3)
        )
        if not channels_last:
            if img.shape[0] not in (1, 3):
                raise ValueError(
                    f"image must be [3, H, W], [H, W, 3] or [H, W], got shape {img.shape}"
                )
            img = np.transpose(img, (1, 2, 0))
    else:
        raise ValueError(f"image must be [3, H, W], [H, W, 3] or [H, W], got shape {img.shape}")
    img = img[:, :, :3]
    if img.dtype == np.uint8:
        img = img.astype(np.float64) / 255.0
    else:
        img = np.clip(img.astype(np.float64), 0.0, 1.0)
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img


def _new_figure(ncols=1, nrows=1, panel_size=(6.0, 6.0)):
    """A Figure with an Agg canvas (no pyplot) and its grid of Axes."""
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _panel_size(height, width, base=6.0):
    aspect = height / max(width, 1)
    return base, float(np.clip(base * aspect, 2.0, 2.5 * base))


def _prepare_image_axes(ax, image, image_size=None):
    """(fig, ax, H, W): a new or the given Axes with ``image`` drawn at extent (0, W, H, 0)
    (gid "image"), or an empty canvas of ``image_size`` = (H, W) when image is None."""
    img = None if image is None else _image_hwc(image)
    if img is not None:
        height, width = img.shape[:2]
    elif image_size is not None:
        height, width = int(image_size[0]), int(image_size[1])
    else:
        raise ValueError("give an image or an image_size (H, W)")
    if ax is None:
        fig, axes = _new_figure(panel_size=_panel_size(height, width))
        ax = axes[0, 0]
    else:
        fig = ax.figure
    if img is not None:
        ax.imshow(img, extent=(0, width, height, 0), interpolation="nearest", gid="image")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    return fig, ax, height, width


def _add_box(ax, box, color, gid, linewidth=1.5, linestyle="-", alpha=1.0, label=None):
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


def _fit_limits(ax, height, width, boxes, margin=0.05):
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


def _class_name(label, class_names):
    if class_names is None:
        return str(label)
    if isinstance(class_names, dict):
        return str(class_names.get(label, label))
    if 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)


# ---------------------------------------------------------------------------- detections
def draw_instances(
    image,
    boxes=None,
    labels=None,
    scores=None,
    masks=None,
    class_names=None,
    score_threshold=0.0,
    ax=None,
    title=None,
):
    """Detections (or ground truth) on an image: what the model finally says.

    image   [3, H, W] floats in [0, 1] or [H, W, 3] uint8
    boxes   (D, 4) (x1, y1, x2, y2) in pixels       labels (D,) class indices
    scores  (D,) confidences                        masks (D, 1, H, W) or (D, H, W)
    class_names  a list indexed by label (index 0 "background") or a dict label -> name

    The student sees each instance with scores[i] >= score_threshold (all of them when no
    scores are given) in its own colour ``instance_color(i)`` (i the instance's index in the
    inputs, so a colour does not change when the threshold moves): a translucent overlay
    where its mask is >= 0.5 (masks may be probabilities or 0/1), the box outline, and a
    caption "name score" at the box's top-left corner. Masks of M x M cells (the mask
    head's raw output) are first pasted into their boxes with
    ``minimask.models.masks.paste_masks_in_image``, the same rule as inference, so the
    picture is the model's real output.

    Artists: Rectangle patches gid "box", one RGBA AxesImage per instance gid "mask"
    (alpha > 0 exactly where the mask is drawn), Text gid "label". Returns the figure.
    """
    fig, ax, height, width = _prepare_image_axes(ax, image)
    boxes = _boxes(boxes, "boxes")
    labels = _to_numpy(labels)
    scores = _to_numpy(scores)
    masks = _to_numpy(masks)
    if masks is not None:
        masks = np.asarray(masks, dtype=np.float64)
        if masks.ndim == 4:
            if masks.shape[1] != 1:
                raise ValueError(f"masks must be (D, 1, H, W) or (D, H, W), got {masks.shape}")
            masks = masks[:, 0]
        if masks.ndim != 3:
            raise ValueError(f"masks must be (D, 1, H, W) or (D, H, W), got {masks.shape}")
        if masks.shape[1:] != (height, width) and len(masks):
            if boxes is None:
                raise ValueError(
                    f"masks of shape {masks.shape[1:]} differ from the image's {(height, width)}"
                    " and no boxes were given to paste them into"
                )
            from minimask.autograd.factories import tensor
            from minimask.models.masks import paste_masks_in_image

            masks = paste_masks_in_image(
                tensor(masks), tensor(boxes), (height, width), threshold=None
            ).numpy()[:, 0]
    counts = {
        name: len(v)
        for name, v in (("boxes", boxes), ("labels", labels), ("scores", scores), ("masks", masks))
        if v is not None
    }
    if len(set(counts.values())) > 1:
        raise ValueError(f"draw_instances: different numbers of instances: {counts}")
    n = next(iter(counts.values()), 0)
    keep = np.ones(n, dtype=bool)
    if scores is not None:
        keep = np.asarray(scores, dtype=np.float64).reshape(-1) >= score_threshold
    for i in np.flatnonzero(keep):
        color = instance_color(i)
        anchor = None
        if masks is not None:
            drawn = masks[i] >= 0.5
            overlay = np.zeros((height, width, 4))
            overlay[drawn, :3] = color
            overlay[drawn, 3] = MASK_ALPHA
            ax.imshow(overlay, extent=(0, width, height, 0), interpolation="nearest", gid="mask")
            if drawn.any():
                rows, cols = np.nonzero(drawn)
                anchor = (float(cols.min()), float(rows.min()))
        if boxes is not None:
            _add_box(ax, boxes[i], color, "box", linewidth=2.0)
            anchor = (float(boxes[i, 0]), float(boxes[i, 1]))
        parts = []
        if labels is not None:
            parts.append(_class_name(int(labels[i]), class_names))
        if scores is not None:
            parts.append(f"{float(scores[i]):.2f}")
        if parts and anchor is not None:
            # Above the box's top edge, or just inside it where the edge is near the image's
            # top and a caption above would be clipped away.
            near_top = anchor[1] < CAPTION_ROOM * height
            ax.text(
                anchor[0],
                anchor[1],
                " ".join(parts),
                color="white",
                fontsize=8,
                va="top" if near_top else "bottom",
                ha="left",
                clip_on=True,
                bbox={"facecolor": color, "alpha": 0.8, "pad": 1.0, "edgecolor": "none"},
                gid="label",
            )
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    if title is None:
        title = f"{int(keep.sum())} of {n} instances"
        if scores is not None:
            title += f" with score >= {score_threshold:g}"
    ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------- anchors
def draw_anchors(
    image_size,
    anchors,
    ax=None,
    image=None,
    color=None,
    centers=True,
    linewidth=1.5,
    title=None,
):
    """Anchor boxes (N, 4) on an image of ``image_size`` = (H, W) (drawn if ``image`` is
    given, else an empty canvas with the image's border dashed).

    The student sees that anchors are fixed boxes of a few sizes and shapes, and that many
    stick out of the image (the limits widen to show them whole). Each anchor is a
    Rectangle gid "anchor" (colour ``instance_color(i)`` unless ``color`` is given); its
    centre is a point of the scatter gid "anchor centres" when ``centers``.
    """
    fig, ax, height, width = _prepare_image_axes(ax, image, image_size)
    anchors = _boxes(anchors, "anchors")
    ax.add_patch(
        Rectangle(
            (0, 0), width, height, fill=False, edgecolor="black", linestyle="--", gid="image border"
        )
    )
    for i, box in enumerate(anchors):
        _add_box(ax, box, instance_color(i) if color is None else color, "anchor", linewidth)
    if centers and len(anchors):
        cx = (anchors[:, 0] + anchors[:, 2]) / 2
        cy = (anchors[:, 1] + anchors[:, 3]) / 2
        ax.scatter(cx, cy, s=12, c="black", marker="+", gid="anchor centres", zorder=3)
    _fit_limits(ax, height, width, anchors)
    ax.set_title(f"{len(anchors)} anchors" if title is None else title)
    return fig


def draw_anchors_at(
    anchor_generator, image_size, grid_sizes, level, position, ax=None, image=None, title=None
):
    """The A anchors that ``anchor_generator`` places at one cell of one FPN level.

    image_size (H, W); grid_sizes [(H_l, W_l), ...] of every level (the strides are
    image_size // grid_size, as ``AnchorGenerator.__call__``); ``position`` = (y, x), the
    cell's row and column in level ``level``'s grid.

    The anchors are rows (y * W_l + x) * A + a of ``anchor_generator.grid_anchors`` (its
    real output, not a re-derivation). The student sees the A shapes (every aspect ratio
    times every size, ratio-major) sharing one centre, and that the centre is the cell's
    top-left corner (x * stride_w, y * stride_h), torchvision's convention, not the cell's
    middle. The cell is a shaded Rectangle gid "cell", the anchors Rectangles gid "anchor"
    with legend entries "size s, ratio r", the centre a scatter point gid "anchor centres".
    """
    grid_sizes = [(int(h), int(w)) for h, w in grid_sizes]
    strides = [(int(image_size[0]) // h, int(image_size[1]) // w) for h, w in grid_sizes]
    per_level = anchor_generator.grid_anchors(grid_sizes, strides)
    level_anchors = _to_numpy(per_level[level]).astype(np.float64)
    num = anchor_generator.num_anchors_per_location()[level]
    grid_h, grid_w = grid_sizes[level]
    y, x = int(position[0]), int(position[1])
    if not (0 <= y < grid_h and 0 <= x < grid_w):
        raise ValueError(f"position {position} is outside level {level}'s grid {grid_h}x{grid_w}")
    first = (y * grid_w + x) * num
    cell_anchors = level_anchors[first : first + num]
    stride_h, stride_w = strides[level]
    fig = draw_anchors(image_size, cell_anchors, ax=ax, image=image, centers=True, title="")
    ax = fig.axes[0] if ax is None else ax
    sizes = anchor_generator.sizes[level]
    ratios = anchor_generator.aspect_ratios[level]
    anchor_patches = [p for p in ax.patches if p.get_gid() == "anchor"][-num:]
    for a, patch in enumerate(anchor_patches):
        ratio, size = ratios[a // len(sizes)], sizes[a % len(sizes)]
        patch.set_label(f"size {size}, ratio {ratio:g}")
    ax.add_patch(
        Rectangle(
            (x * stride_w, y * stride_h),
            stride_w,
            stride_h,
            facecolor="black",
            alpha=0.3,
            edgecolor="none",
            gid="cell",
        )
    )
    ax.legend(loc="upper right", fontsize=7)
    if title is None:
        title = (
            f"level {level}: {num} anchors at cell (y={y}, x={x}) of {grid_h}x{grid_w}, "
            f"stride {stride_h}x{stride_w}"
        )
    ax.set_title(title, fontsize=9)
    return fig


def draw_matched_anchors(
    image, anchors, gt_box, matched, gt_index=None, ax=None, image_size=None, title=None
):
    """Every anchor matched to one ground-truth box: the RPN's positives for that object.

    ``matched`` picks the anchors, one of:
      - a bool mask (N,) over ``anchors``;
      - the Matcher's output (N,) of matched gt indices (-1 / -2 for none) together with
        ``gt_index``: the anchors with matched == gt_index;
      - (without gt_index) integer indices into ``anchors``.

    The student sees how few anchors match, that they cluster on the object with sizes and
    shapes near its own, and (with allow_low_quality_matches) the lone anchor matched to a
    small or odd-shaped object. The gt box is a thick Rectangle gid "gt", the matched
    anchors Rectangles gid "anchor". ``image`` may be None with ``image_size`` = (H, W).
    """
    fig, ax, height, width = _prepare_image_axes(ax, image, image_size)
    anchors = _boxes(anchors, "anchors")
    gt = _boxes(gt_box, "gt_box")[0]
    matched = np.asarray(_to_numpy(matched)).reshape(-1)
    if matched.dtype == bool:
        if len(matched) != len(anchors):
            raise ValueError(f"matched mask has {len(matched)} entries for {len(anchors)} anchors")
        chosen = anchors[matched]
    elif gt_index is not None:
        if len(matched) != len(anchors):
            raise ValueError(f"matched has {len(matched)} entries for {len(anchors)} anchors")
        chosen = anchors[matched == gt_index]
    else:
        chosen = anchors[matched.astype(np.int64)]
    for i, box in enumerate(chosen):
        _add_box(ax, box, instance_color(i), "anchor", linewidth=1.0, alpha=0.8)
    _add_box(ax, gt, GT_COLOR, "gt", linewidth=3.0)
    _fit_limits(ax, height, width, np.concatenate([chosen, gt[None]]))
    ax.set_title(f"{len(chosen)} anchors matched to the gt box" if title is None else title)
    return fig


# ---------------------------------------------------------------------------- proposals
def draw_proposals(image, before_nms, after_nms, axes=None, title=None):
    """Two panels: the RPN's candidate boxes before NMS (left) and the proposals after NMS
    (right), Rectangles gid "proposal".

    The student sees NMS at work: the left panel is a thick pile of near-duplicate boxes on
    every object, the right keeps one or a few boxes per object. ``axes``: two Axes to
    draw into (default: a new 1 x 2 figure).
    """
    img = _image_hwc(image)
    height, width = img.shape[:2]
    if axes is None:
        pw, ph = _panel_size(height, width, base=5.0)
        fig, grid = _new_figure(ncols=2, panel_size=(pw, ph))
        axes = grid[0]
    fig = axes[0].figure
    for ax, boxes, name in zip(axes, (before_nms, after_nms), ("before NMS", "after NMS")):
        _prepare_image_axes(ax, img)
        boxes = _boxes(boxes, name)
        alpha = float(np.clip(20.0 / max(len(boxes), 1), 0.15, 1.0))
        for box in boxes:
            _add_box(ax, box, "#00e5ff", "proposal", linewidth=0.8, alpha=alpha)
        ax.set_title(f"{name}: {len(boxes)} boxes")
        ax.set_axis_off()
    if title is not None:
        fig.suptitle(title)
    return fig


def draw_sampled_rois(image, positives, negatives, gt_boxes=None, ax=None, title=None):
    """The RoIs the box head is trained on: positives (matched to an object, IoU >= 0.5) in
    green, gid "positive"; negatives (background) in red, gid "negative"; the gt boxes
    thick and gold, gid "gt".

    The student sees what the sampler balances: positives hug the objects, negatives are
    spread over the background and the objects' surroundings (partial overlaps teach the
    classifier where an object ends).
    """
    fig, ax, _, _ = _prepare_image_axes(ax, image)
    positives = _boxes(positives, "positives")
    negatives = _boxes(negatives, "negatives")
    for box in negatives:
        _add_box(ax, box, NEGATIVE_COLOR, "negative", linewidth=0.8, alpha=0.6)
    for box in positives:
        _add_box(ax, box, POSITIVE_COLOR, "positive", linewidth=1.2)
    gt_boxes = _boxes(gt_boxes, "gt_boxes")
    if gt_boxes is not None:
        for box in gt_boxes:
            _add_box(ax, box, GT_COLOR, "gt", linewidth=2.5)
    ax.set_axis_off()
    if title is None:
        title = f"{len(positives)} positive (green), {len(negatives)} negative (red) RoIs"
    ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------- RoIAlign
def _roi_geometry(box, output_size, spatial_scale, sampling_ratio, aligned):
    """(start_h, start_w, roi_h, roi_w, bin_h, bin_w, grid_h, grid_w, pooled_h, pooled_w) of a
    box: the kernel's own ``roi_geometry`` (minimask/cpu/roi_align.py), run as Python."""
    box = np.asarray(_to_numpy(box), dtype=np.float64).reshape(-1)
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
    _, start_h, start_w, bin_h, bin_w, grid_h, grid_w = roi_geometry.py_func(
        roi, float(spatial_scale), pooled_h, pooled_w, int(sampling_ratio), bool(aligned)
    )
    roi_h, roi_w = bin_h * pooled_h, bin_w * pooled_w
    return start_h, start_w, roi_h, roi_w, bin_h, bin_w, grid_h, grid_w, pooled_h, pooled_w


def roi_align_sample_points(box, output_size, spatial_scale=1.0, sampling_ratio=2, aligned=True):
    """The positions RoIAlign samples for one box: array (PH, PW, grid_h, grid_w, 2) of
    (y, x) float64 in feature-map cell units (cell (i, j) at y = i, x = j).

    box (x1, y1, x2, y2) in image pixels (or (batch_index, x1, y1, x2, y2)); the other
    arguments as ``minimask.ops.roi_align``. The formulas are the kernel's, operation for
    operation (minimask/cpu/roi_align.py):

        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w

    so output bin (ph, pw) of roi_align is the mean over (iy, ix) of the bilinear value at
    these points (``bilinear_neighbours``); in adaptive mode (sampling_ratio <= 0)
    grid_h = ceil(roi_h / PH) may differ from grid_w, and is 0 for an empty aligned box (the
    bin is then 0).
    """
    start_h, start_w, _, _, bin_h, bin_w, grid_h, grid_w, pooled_h, pooled_w = _roi_geometry(
        box, output_size, spatial_scale, sampling_ratio, aligned
    )
    ph = np.arange(pooled_h, dtype=np.float64)[:, None, None, None]
    pw = np.arange(pooled_w, dtype=np.float64)[None, :, None, None]
    iy = np.arange(grid_h, dtype=np.float64)[None, None, :, None]
    ix = np.arange(grid_w, dtype=np.float64)[None, None, None, :]
    y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
    x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
    shape = (pooled_h, pooled_w, grid_h, grid_w)
    return np.stack([np.broadcast_to(y, shape), np.broadcast_to(x, shape)], axis=-1)


def bilinear_neighbours(y, x, height, width):
    """The feature cells a bilinear sample at (y, x) reads, by RoIAlign's border rule.

    Returns (cells, weights): cells int64 (4, 2) of (row, column) in the kernel's order
    (y_low, x_low), (y_low, x_high), (y_high, x_low), (y_high, x_high), and their weights
    (4,) float64 (summing to 1); the sample's value is sum(weights * f[cells[:, 0],
    cells[:, 1]]). As ``bilinear_corners`` in minimask/cpu/roi_align.py (torchvision's
    ``bilinear_interpolate``): a sample with y < -1 or y > H (or x < -1 or x > W) reads
    nothing and is 0 (cells (0, 2), weights (0,)); otherwise y <= 0 is clamped to 0 and
    y_low >= H - 1 to y_low = y_high = H - 1 (same for x), so within one cell outside the
    map the edge value repeats and the 4 cells may coincide.
    """
    y, x = float(y), float(x)
    height, width = int(height), int(width)
    if outside_map.py_func(y, x, height, width):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    y_low, x_low, y_high, x_high, *weights = bilinear_corners.py_func(y, x, height, width)
    cells = np.array(
        [[y_low, x_low], [y_low, x_high], [y_high, x_low], [y_high, x_high]], dtype=np.int64
    )
    return cells, np.array(weights)


def _feature_plane(feature_map):
    """A 2-D (H, W) float64 plane: leading axes of size 1 are dropped, then the first
    channel of a remaining (C, H, W) is taken."""
    fm = np.asarray(_to_numpy(feature_map), dtype=np.float64)
    while fm.ndim > 2 and fm.shape[0] == 1:
        fm = fm[0]
    while fm.ndim > 2:
        fm = fm[0]
    if fm.ndim != 2:
        raise ValueError(f"feature_map must be (H, W) (or (C, H, W)), got {fm.shape}")
    return fm


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
    highlight.

    Coordinates are the kernel's: feature cell (i, j) holds its value at y = i, x = j, and
    the image is drawn with matplotlib's default extent (cell (i, j) covers
    [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]), so every point plots at the exact coordinate
    the kernel computes. The student sees:

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
    start_h, start_w, roi_h, roi_w, bin_h, bin_w, grid_h, grid_w, pooled_h, pooled_w = (
        _roi_geometry(box, output_size, spatial_scale, sampling_ratio, aligned)
    )
    ph, pw = int(bin[0]), int(bin[1])
    if not (0 <= ph < pooled_h and 0 <= pw < pooled_w):
        raise ValueError(f"bin {bin} is outside the {pooled_h}x{pooled_w} output")
    points = roi_align_sample_points(box, output_size, spatial_scale, sampling_ratio, aligned)
    if ax is None:
        fig, axes = _new_figure(panel_size=_panel_size(height + 2, width + 2, base=7.0))
        ax = axes[0, 0]
    else:
        fig = ax.figure
    ax.imshow(fm, cmap="viridis", interpolation="nearest", gid="feature map")
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
            (start_w, start_h),
            roi_w,
            roi_h,
            fill=False,
            edgecolor="white",
            linewidth=2.0,
            gid="roi",
        )
    )
    grid_segments = [
        [(start_w, start_h + i * bin_h), (start_w + roi_w, start_h + i * bin_h)]
        for i in range(pooled_h + 1)
    ] + [
        [(start_w + j * bin_w, start_h), (start_w + j * bin_w, start_h + roi_h)]
        for j in range(pooled_w + 1)
    ]
    ax.add_collection(
        LineCollection(grid_segments, colors="white", linewidths=0.8, alpha=0.8, gid="bin grid")
    )
    ax.add_patch(
        Rectangle(
            (start_w + pw * bin_w, start_h + ph * bin_h),
            bin_w,
            bin_h,
            facecolor="orange",
            alpha=0.25,
            edgecolor="orange",
            gid="chosen bin",
        )
    )
    flat = points.reshape(-1, 2)
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
    outside = (
        (flat[:, 0] < -1.0) | (flat[:, 0] > height) | (flat[:, 1] < -1.0) | (flat[:, 1] > width)
    )
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
    chosen = points[ph, pw].reshape(-1, 2)
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
    value = total / max(grid_h * grid_w, 1)
    xs = [-1.5, width + 0.5, start_w, start_w + roi_w]
    ys = [-1.5, height + 0.5, start_h, start_h + roi_h]
    pad = 0.5
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    ax.set_ylim(max(ys) + pad, min(ys) - pad)
    ax.set_aspect("equal")
    if title is None:
        title = (
            f"RoIAlign {pooled_h}x{pooled_w}, {grid_h}x{grid_w} samples per bin"
            f"{' (adaptive)' if sampling_ratio <= 0 else ''}, aligned={bool(aligned)}\n"
            f"bin ({ph}, {pw}) = mean of its samples = {value:.4g}"
        )
    ax.set_title(title, fontsize=9)
    return fig


# ---------------------------------------------------------------------------- masks
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
    targets = np.asarray(_to_numpy(targets), dtype=np.float64)
    if targets.ndim == 4:
        targets = targets[:, 0]
    if targets.ndim != 3:
        raise ValueError(f"targets must be (P, M, M) or (P, 1, M, M), got {targets.shape}")
    preds = _to_numpy(predictions)
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
    fig, axes = _new_figure(ncols=pairs * per_pair, nrows=rows, panel_size=(1.8, 1.9))
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


# ---------------------------------------------------------------------------- training
def read_loss_log(log):
    """The records of a training log: ``log`` a path to a JSON-lines file (one dict per
    line; blank lines skipped) or an iterable of dicts. Returns a list of dicts."""
    if isinstance(log, (str, os.PathLike)):
        records = []
        with open(log, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{log}: line {number} is not JSON: {e}") from e
        return records
    return [dict(r) for r in log]


def _is_number(v):
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool)


def draw_loss_curves(log, keys=None, title=None):
    """Training curves from a log: one line per loss term against the step.

    ``log``: a JSON-lines path or a list of dicts, each with "step" (the record's index if
    missing) and numeric terms. Loss terms are the keys "loss" and "loss_*" (or ``keys``);
    each is drawn from the records that have it (so terms logged at different rates work),
    as a Line2D labelled with the key, in the record order. The y axis is logarithmic when
    every finite value drawn is positive (losses fall over decades), linear otherwise.
    A learning-rate key ("lr", or keys starting with "lr") gets a second panel, log-scaled
    if positive, since warm-up and decay steps explain kinks in the losses; other numeric
    keys (epoch, time, ...) are ignored.
    """
    records = read_loss_log(log)
    steps_of = [float(r.get("step", i)) for i, r in enumerate(records)]
    numeric = []
    for r in records:
        for k, v in r.items():
            if k != "step" and _is_number(v) and k not in numeric:
                numeric.append(k)
    if keys is None:
        keys = [k for k in numeric if k == "loss" or k.startswith("loss_")]
    lr_keys = [k for k in numeric if (k == "lr" or k.startswith("lr")) and k not in keys]
    fig, axes = _new_figure(ncols=2 if lr_keys else 1, panel_size=(6.5, 4.5))
    panels = [(axes[0, 0], keys, "loss")]
    if lr_keys:
        panels.append((axes[0, 1], lr_keys, "learning rate"))
    for ax, panel_keys, ylabel in panels:
        drawn = []
        for key in panel_keys:
            xs = [s for s, r in zip(steps_of, records) if _is_number(r.get(key))]
            ys = [float(r[key]) for r in records if _is_number(r.get(key))]
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
    axes[0, 0].set_title(f"{len(records)} log records" if title is None else title)
    fig.tight_layout()
    return fig


def save_figure(fig, path, dpi=100):
    """Write ``fig`` as a PNG at ``path`` (dpi 100 by default), atomically: it is saved to a
    temporary file in the same folder and then renamed over ``path`` with os.replace, so a
    reader (or a crash) never sees half a file. Returns ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(
        folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )
    try:
        with open(tmp, "xb") as f:  # the usual permissions (umask), unlike mkstemp's 0600
            fig.savefig(f, format="png", dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
