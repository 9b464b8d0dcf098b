"""Boxes on their way to the box head: the RPN's proposals before and after NMS, and the
positive and negative RoIs sampled to train the second stage."""

import numpy as np

from minimask.viz.figures import add_box, image_panel_size, new_figure, prepare_image_axes
from minimask.viz.inputs import as_boxes, image_hwc
from minimask.viz.style import GT_COLOR, NEGATIVE_COLOR, POSITIVE_COLOR


def draw_proposals(image, before_nms, after_nms, axes=None, title=None):
    """Two panels: the RPN's candidate boxes before NMS (left) and the proposals after NMS
    (right), Rectangles gid "proposal".

    The student sees NMS at work: the left panel is a thick pile of near-duplicate boxes on
    every object, the right keeps one or a few boxes per object. ``axes``: two Axes to
    draw into (default: a new 1 x 2 figure).
    """
    img = image_hwc(image)
    height, width = img.shape[:2]
    if axes is None:
        pw, ph = image_panel_size(height, width, base=5.0)
        fig, grid = new_figure(ncols=2, panel_size=(pw, ph))
        axes = grid[0]
    fig = axes[0].figure
    for ax, boxes, name in zip(axes, (before_nms, after_nms), ("before NMS", "after NMS")):
        prepare_image_axes(ax, img)
        boxes = as_boxes(boxes, name)
        alpha = float(np.clip(20.0 / max(len(boxes), 1), 0.15, 1.0))
        for box in boxes:
            add_box(ax, box, "#00e5ff", "proposal", linewidth=0.8, alpha=alpha)
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
    fig, ax, _, _ = prepare_image_axes(ax, image)
    positives = as_boxes(positives, "positives")
    negatives = as_boxes(negatives, "negatives")
    for box in negatives:
        add_box(ax, box, NEGATIVE_COLOR, "negative", linewidth=0.8, alpha=0.6)
    for box in positives:
        add_box(ax, box, POSITIVE_COLOR, "positive", linewidth=1.2)
    gt_boxes = as_boxes(gt_boxes, "gt_boxes")
    if gt_boxes is not None:
        for box in gt_boxes:
            add_box(ax, box, GT_COLOR, "gt", linewidth=2.5)
    ax.set_axis_off()
    if title is None:
        title = f"{len(positives)} positive (green), {len(negatives)} negative (red) RoIs"
    ax.set_title(title)
    return fig
