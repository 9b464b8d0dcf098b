"""Anchors: the fixed boxes the RPN scores, where the generator places them, and which of
them match an object."""

import numpy as np
from matplotlib.patches import Rectangle

from minimask.viz.figures import add_box, fit_limits, prepare_image_axes
from minimask.viz.inputs import as_boxes, to_numpy
from minimask.viz.style import GT_COLOR, instance_color


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
    fig, ax, height, width = prepare_image_axes(ax, image, image_size)
    anchors = as_boxes(anchors, "anchors")
    ax.add_patch(
        Rectangle(
            (0, 0), width, height, fill=False, edgecolor="black", linestyle="--", gid="image border"
        )
    )
    for i, box in enumerate(anchors):
        add_box(ax, box, instance_color(i) if color is None else color, "anchor", linewidth)
    if centers and len(anchors):
        cx = (anchors[:, 0] + anchors[:, 2]) / 2
        cy = (anchors[:, 1] + anchors[:, 3]) / 2
        ax.scatter(cx, cy, s=12, c="black", marker="+", gid="anchor centres", zorder=3)
    fit_limits(ax, height, width, anchors)
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
    level_anchors = to_numpy(per_level[level]).astype(np.float64)
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
    fig, ax, height, width = prepare_image_axes(ax, image, image_size)
    anchors = as_boxes(anchors, "anchors")
    gt = as_boxes(gt_box, "gt_box")[0]
    matched = np.asarray(to_numpy(matched)).reshape(-1)
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
        add_box(ax, box, instance_color(i), "anchor", linewidth=1.0, alpha=0.8)
    add_box(ax, gt, GT_COLOR, "gt", linewidth=3.0)
    fit_limits(ax, height, width, np.concatenate([chosen, gt[None]]))
    ax.set_title(f"{len(chosen)} anchors matched to the gt box" if title is None else title)
    return fig
