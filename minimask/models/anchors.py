"""Anchors: the reference boxes the RPN scores and regresses, A of them at every
feature-map cell of every FPN level.

torchvision.models.detection.anchor_utils.AnchorGenerator semantics. For a size s and an
aspect ratio r = height / width, the anchor centred at 0 has

    h = s * sqrt(r),  w = s / sqrt(r)   (so w * h = s^2)
    base anchor = round((-w / 2, -h / 2, w / 2, h / 2))

computed in float32 and rounded half to even, as torchvision does (size 32, ratio 0.5:
w = 45.25, h = 22.63 -> (-23, -11, 23, 11)). The cell anchors are then shifted to every cell
(x * stride_w, y * stride_h) of a level's grid (the cell's top-left corner, as in
torchvision), in the order (y, x, anchor): row index = (y * W + x) * A + a.
"""

import numpy as np

from minimask.autograd.factories import tensor


class AnchorGenerator:
    """sizes: one size (or a tuple of sizes) per FPN level, e.g. (32, 64, 128, 256, 512);
    aspect_ratios: one tuple per level, or a single tuple used for every level."""

    def __init__(self, sizes=(32, 64, 128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0)):
        self.sizes = tuple(tuple(s) if isinstance(s, (tuple, list)) else (s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (tuple, list)):
            aspect_ratios = (tuple(aspect_ratios),) * len(self.sizes)
        if len(aspect_ratios) != len(self.sizes):
            raise ValueError(
                f"AnchorGenerator: {len(self.sizes)} levels of sizes but "
                f"{len(aspect_ratios)} of aspect ratios"
            )
        self.aspect_ratios = tuple(tuple(r) for r in aspect_ratios)
        self.cell_anchors = [
            self.generate_anchors(s, r) for s, r in zip(self.sizes, self.aspect_ratios)
        ]

    @staticmethod
    def generate_anchors(scales, aspect_ratios):
        """Cell anchors (len(ratios) * len(scales), 4) float32 NumPy array, centred at 0;
        ratio-major order as torchvision (for each ratio, every scale)."""
        scales = np.asarray(scales, dtype=np.float32)
        aspect_ratios = np.asarray(aspect_ratios, dtype=np.float32)
        h_ratios = np.sqrt(aspect_ratios)
        w_ratios = np.float32(1) / h_ratios
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        base = np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)
        return np.round(base)  # NumPy rounds half to even, like torch.round

    def num_anchors_per_location(self):
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, grid_sizes, strides, device="cpu"):
        """One float32 Tensor (H * W * A, 4) per level, for grids [(H, W), ...] and strides
        [(stride_h, stride_w), ...] in pixels of the input image."""
        if not (len(grid_sizes) == len(strides) == len(self.cell_anchors)):
            raise ValueError(
                f"AnchorGenerator: {len(self.cell_anchors)} levels, but {len(grid_sizes)} "
                f"grid sizes and {len(strides)} strides"
            )
        anchors = []
        for (height, width), (stride_h, stride_w), base in zip(
            grid_sizes, strides, self.cell_anchors
        ):
            shifts_x = np.arange(width, dtype=np.float32) * np.float32(stride_w)
            shifts_y = np.arange(height, dtype=np.float32) * np.float32(stride_h)
            shift_y, shift_x = np.meshgrid(shifts_y, shifts_x, indexing="ij")  # (H, W)
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=1)  # (H*W, 4)
            level = (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)  # (y, x, anchor)
            anchors.append(tensor(level, device=device))
        return anchors

    def per_level(self, image_size, grid_sizes, device="cpu"):
        """Anchors for an input of ``image_size`` (height, width) and feature maps of
        ``grid_sizes``, one Tensor (H_k * W_k * A, 4) per level; the strides are
        image_size // grid_size, as in torchvision."""
        strides = [(image_size[0] // h, image_size[1] // w) for h, w in grid_sizes]
        return self.grid_anchors(grid_sizes, strides, device=device)

    def __call__(self, image_size, grid_sizes, device="cpu"):
        """``per_level``'s anchors in one Tensor (sum over levels of H_k * W_k * A, 4),
        levels concatenated in order."""
        per_level = self.per_level(image_size, grid_sizes, device=device)
        return tensor(np.concatenate([a.numpy() for a in per_level]), device=device)
