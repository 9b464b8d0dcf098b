"""Mask targets (training) and mask pasting (inference) for the Mask R-CNN mask head.

mask_targets: the mask head predicts an M x M mask inside each positive proposal, so its
target is the matched ground-truth mask resampled into that proposal box:

    target[p] = roi_align(gt_masks[matched[p]][None, None], proposal_p, (M, M),
                          spatial_scale=1, sampling_ratio, aligned=True)

as torchvision's ``project_masks_on_boxes``, except torchvision uses aligned=False; minimask
uses aligned=True everywhere (the half-pixel shift that puts a box edge on the pixel
boundary it names), so target cell (i, j) averages the gt mask at the
real positions inside the proposal's bin (i, j), with pixel x's value sitting at its centre
x + 0.5. The targets are NOT thresholded (torchvision does not either): a cell that straddles
the mask's border gets a fractional value in [0, 1], which is a valid BCE target and a
smoother one than rounding.

paste_masks_in_image: the inverse at test time, a mask of M x M probabilities for a box
drawn into the H x W image. minimask uses detectron2's "grid_sample into the box" rule
(``detectron2.layers.mask_ops._do_paste_mask``), not torchvision's pad-by-one-and-resize:
image pixel (y, x) has centre (x + 0.5, y + 0.5), which lies at mask coordinates

    u = (x + 0.5 - x1) / (x2 - x1) * M - 0.5        (mask cell j has centre u = j)
    v = (y + 0.5 - y1) / (y2 - y1) * M - 0.5

and the pixel's value is the bilinear interpolation of the mask at (v, u), with the mask
taken as 0 outside its M x M cells (grid_sample, align_corners=False, padding zeros). So an
all-ones mask gives 1 on every pixel whose centre is in the box, at least 0.5 at pixels
whose centre is within half a mask cell inside the edge, and below 0.5 outside the box;
thresholded at 0.5 it covers exactly the pixels whose centre lies in the box. Pixels outside
the image are never computed (clipping is free), and pixels far outside the box are 0.
"""

import numpy as np

from minimask.autograd.factories import tensor
from minimask.autograd.grad_mode import no_grad
from minimask.ops.roi_align import roi_align


def mask_targets(gt_masks, proposals, matched_gt_indices, output_size=28, sampling_ratio=-1):
    """BCE targets (P, M, M) float32 in [0, 1] for the positive proposals of one image.

    gt_masks            (G, H, W) 0/1 masks of the image's objects (any number type)
    proposals           (P, 4) positive proposals (x1, y1, x2, y2) in image pixels
    matched_gt_indices  (P,) integer index into gt_masks of each proposal's object
    output_size         M
    sampling_ratio      as roi_align; -1 (adaptive, torchvision's default) samples every
                        bin at least once per covered pixel

    A list for each of the three arguments (one entry per image) gives the targets of all
    images concatenated in order. No gradient (a target).

    The targets are computed on the host whatever the proposals' device, as the rest of
    the target assignment: the masks, proposals and matches of each image are read once,
    RoIAlign runs on the CPU, and the targets of all images go to the proposals' device
    in one copy.
    """
    if isinstance(proposals, (list, tuple)):
        parts = [
            _host_mask_targets(g, p, m, output_size, sampling_ratio)
            for g, p, m in zip(gt_masks, proposals, matched_gt_indices)
        ]
        none = np.zeros((0, output_size, output_size), dtype=np.float32)
        device = proposals[0].device if proposals else "cpu"
        return tensor(np.concatenate(parts + [none]), device=device)
    targets = _host_mask_targets(
        gt_masks, proposals, matched_gt_indices, output_size, sampling_ratio
    )
    return tensor(targets, device=proposals.device)


def _host_mask_targets(gt_masks, proposals, matched_gt_indices, output_size, sampling_ratio):
    """``mask_targets`` of one image as a host array (P, M, M) float32."""
    boxes = proposals.numpy().astype(np.float64).reshape(-1, 4)
    matched = matched_gt_indices.numpy().astype(np.int64).reshape(-1)
    if len(matched) != len(boxes):
        raise ValueError(
            f"mask_targets: {len(boxes)} proposals but {len(matched)} matched_gt_indices"
        )
    if len(boxes) == 0:
        return np.zeros((0, output_size, output_size), dtype=np.float32)
    masks = gt_masks.numpy().astype(np.float32)[:, None]  # (G, 1, H, W)
    rois = np.concatenate([matched[:, None].astype(np.float64), boxes], axis=1)
    with no_grad():
        out = roi_align(
            tensor(masks),
            tensor(rois),
            output_size,
            spatial_scale=1.0,
            sampling_ratio=sampling_ratio,
            aligned=True,
        )
    return out.numpy()[:, 0]


def _paste_weights(n_pixels, lo, hi, m):
    """Bilinear weights (n_pixels, m): row x holds the weights of mask cells for image pixel
    x along one axis of the box [lo, hi] (the formula for u in the module docstring); cells
    outside [0, m) are dropped, which is the zero padding."""
    size = max(hi - lo, 1e-6)  # a degenerate box covers no pixel centre: all weights 0
    u = (np.arange(n_pixels) + 0.5 - lo) / size * m - 0.5
    left = np.floor(u)
    frac = u - left
    left = left.astype(np.int64)
    weights = np.zeros((n_pixels, m))
    rows = np.arange(n_pixels)
    for cell, w in ((left, 1.0 - frac), (left + 1, frac)):
        inside = (cell >= 0) & (cell < m)
        weights[rows[inside], cell[inside]] = w[inside]
    return weights


def paste_masks_in_image(masks, boxes, image_size, threshold=0.5):
    """Draw each mask (D, M, M) of probabilities into its box (D, 4) of an image
    ``image_size`` = (H, W) -> (D, 1, H, W).

    The rule is the module docstring's (detectron2's paste); values are 0 away from the box
    and pixels outside the image are dropped. ``threshold`` given: uint8 0/1 with
    1 where value >= threshold (detectron2's comparison); None: float32 probabilities.
    Inference only: runs on the host in NumPy, the result goes to ``masks``' device.

    Per box this is separable: image = Wy @ mask @ Wx^T with Wy (H, M), Wx (W, M) the
    bilinear weights of ``_paste_weights``, evaluated only on the rows/columns where Wy/Wx
    have a nonzero weight.
    """
    height, width = int(image_size[0]), int(image_size[1])
    device = masks.device
    host_masks = masks.numpy().astype(np.float64)
    host_boxes = boxes.numpy().astype(np.float64).reshape(-1, 4)
    if host_masks.ndim != 3 or len(host_masks) != len(host_boxes):
        raise ValueError(
            f"paste_masks_in_image: masks must be (D, M, M) and boxes (D, 4), got "
            f"{masks.shape} and {boxes.shape}"
        )
    out = np.zeros((len(host_boxes), 1, height, width), dtype=np.float32)
    for d, ((x1, y1, x2, y2), mask) in enumerate(zip(host_boxes, host_masks)):
        wy = _paste_weights(height, y1, y2, mask.shape[0])
        wx = _paste_weights(width, x1, x2, mask.shape[1])
        rows = np.flatnonzero(wy.any(axis=1))
        cols = np.flatnonzero(wx.any(axis=1))
        if len(rows) == 0 or len(cols) == 0:
            continue
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        out[d, 0, r0:r1, c0:c1] = wy[r0:r1] @ mask @ wx[c0:c1].T
    if threshold is not None:
        out = (out >= threshold).astype(np.uint8)
    return tensor(out, device=device)
