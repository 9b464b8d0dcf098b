"""The crowd rule: anchors and proposals lying mostly inside a crowd region are ignored.

COCO marks a group of objects too dense to outline one by one as a crowd region
(``iscrowd=1``, ``target["crowd_boxes"]`` here). Inside one, "no object" is not a label to
trust, and "this object" is not one either. minimask's rule: a box whose intersection with
some crowd box is more than ``CROWD_IGNORE_THRESHOLD`` (0.5) of the box's own area is
neither positive nor negative in training, unless the Matcher made it a positive.

torchvision's reference scripts and detectron2 drop crowd annotations altogether;
Detectron leaves them out of the RPN's targets and filters proposals that lie in crowds
(intersection over the proposal's area above 0.7) only when proposals come from a file,
not in end-to-end training. The RPN (``rpn_targets``) and the RoI heads
(``RoIHeads.select_training_samples``) both apply this one function.
"""

import numpy as np

CROWD_IGNORE_THRESHOLD = 0.5  # intersection / box area above this: ignored


def crowd_covered(boxes, crowd_boxes):
    """bool (P,): the boxes (P, 4) whose intersection with some crowd box (C, 4) is more
    than CROWD_IGNORE_THRESHOLD of the box's own area (NumPy arrays in, no gradient)."""
    if crowd_boxes is None or len(crowd_boxes) == 0:
        return np.zeros(len(boxes), dtype=np.bool_)
    top_left = np.maximum(boxes[:, None, :2], crowd_boxes[None, :, :2])  # (P, C, 2)
    bottom_right = np.minimum(boxes[:, None, 2:], crowd_boxes[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    inter = wh[..., 0] * wh[..., 1]  # (P, C)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (P,)
    return (inter > CROWD_IGNORE_THRESHOLD * area[:, None]).any(axis=1)
