"""``draw_instances``: detections (or ground truth) on an image, what the model finally says."""

import numpy as np

from minimask.viz.figures import add_box, prepare_image_axes
from minimask.viz.inputs import as_boxes, to_numpy
from minimask.viz.style import CAPTION_ROOM, MASK_ALPHA, instance_color


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
    fig, ax, height, width = prepare_image_axes(ax, image)
    boxes = as_boxes(boxes, "boxes")
    labels = to_numpy(labels)
    scores = to_numpy(scores)
    masks = _image_masks(to_numpy(masks), boxes, height, width)
    n = _instance_count(boxes, labels, scores, masks)
    keep = np.ones(n, dtype=bool)
    if scores is not None:
        keep = np.asarray(scores, dtype=np.float64).reshape(-1) >= score_threshold
    for i in np.flatnonzero(keep):
        color = instance_color(i)
        anchor = None  # where the caption goes: the box's top-left, else the mask's
        if masks is not None:
            anchor = _draw_mask(ax, masks[i], color)
        if boxes is not None:
            add_box(ax, boxes[i], color, "box", linewidth=2.0)
            anchor = (float(boxes[i, 0]), float(boxes[i, 1]))
        parts = _caption_parts(i, labels, scores, class_names)
        if parts and anchor is not None:
            _draw_caption(ax, " ".join(parts), anchor, color, height)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    if title is None:
        title = f"{int(keep.sum())} of {n} instances"
        if scores is not None:
            title += f" with score >= {score_threshold:g}"
    ax.set_title(title)
    return fig


def _image_masks(masks, boxes, height, width):
    """(D, H, W) float64 masks in image pixels from (D, 1, *) or (D, *) masks, or None; masks
    of another size than the image (the mask head's M x M) are pasted into ``boxes``."""
    if masks is None:
        return None
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
    return masks


def _instance_count(boxes, labels, scores, masks):
    """The number of instances the given inputs describe (0 if none is given); a ValueError
    if they disagree."""
    counts = {
        name: len(v)
        for name, v in (("boxes", boxes), ("labels", labels), ("scores", scores), ("masks", masks))
        if v is not None
    }
    if len(set(counts.values())) > 1:
        raise ValueError(f"draw_instances: different numbers of instances: {counts}")
    return next(iter(counts.values()), 0)


def _draw_mask(ax, mask, color):
    """Overlay ``color`` at MASK_ALPHA where ``mask`` >= 0.5 (an RGBA image, gid "mask");
    returns the top-left (x, y) of the drawn pixels, or None if there are none."""
    height, width = mask.shape
    drawn = mask >= 0.5
    overlay = np.zeros((height, width, 4))
    overlay[drawn, :3] = color
    overlay[drawn, 3] = MASK_ALPHA
    ax.imshow(overlay, extent=(0, width, height, 0), interpolation="nearest", gid="mask")
    if not drawn.any():
        return None
    rows, cols = np.nonzero(drawn)
    return (float(cols.min()), float(rows.min()))


def _caption_parts(i, labels, scores, class_names):
    """The words of instance i's caption: its class name and its score, those given."""
    parts = []
    if labels is not None:
        parts.append(_class_name(int(labels[i]), class_names))
    if scores is not None:
        parts.append(f"{float(scores[i]):.2f}")
    return parts


def _class_name(label, class_names):
    """The name of ``label`` in a list or dict of class names, else the label itself."""
    if class_names is None:
        return str(label)
    if isinstance(class_names, dict):
        return str(class_names.get(label, label))
    if 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)


def _draw_caption(ax, caption, anchor, color, height):
    """White text on ``color`` (Text gid "label") at ``anchor`` = (x, y): above the box's
    top edge, or just inside it where the edge is near the image's top and a caption above
    would be clipped away."""
    near_top = anchor[1] < CAPTION_ROOM * height
    ax.text(
        anchor[0],
        anchor[1],
        caption,
        color="white",
        fontsize=8,
        va="top" if near_top else "bottom",
        ha="left",
        clip_on=True,
        bbox={"facecolor": color, "alpha": 0.8, "pad": 1.0, "edgecolor": "none"},
        gid="label",
    )
