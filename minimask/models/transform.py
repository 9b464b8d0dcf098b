"""The model's input and output transform (torchvision's GeneralizedRCNNTransform).

Before the network, for each image [3, H, W] in [0, 1] and its target:
    normalise        (x - mean) / std per channel (config image_mean, image_std)
    resize           bilinear, shortest side to min_size unless the longest would pass
                     max_size (minimask/data/transforms.py has the exact rule); boxes and
                     crowd boxes are scaled by the same factors. In training, a target's
                     "min_size" (multi-scale training: the size engine/batches.py drew
                     for that image) replaces the config's min_size; max_size still caps
                     it. Without targets (inference) it is always the config's min_size.
    batch            zero-pad to a common size, a multiple of size_divisible (32: the
                     coarsest FPN level P5 has stride 32, so every level's grid is exact)
The masks are NOT resized: the target gets ``mask_scale`` = (W / w, H / h), which maps a box
of the resized image back onto the original pixels, and the mask targets are resampled from
the original masks (roi_heads.py). That is exact where resizing a 0/1 mask is not.

After the network (inference): boxes are scaled back to the original image and each
detection's 28 x 28 mask probabilities are pasted into it (masks.py), giving torchvision's
output: boxes [D, 4], labels [D], scores [D], masks [D, 1, H, W] probabilities.
"""

import numpy as np

from minimask.data.transforms import (
    batch_images,
    normalize,
    resize_boxes,
    resize_image,
    resize_scale,
    resized_size,
)
from minimask.models.masks import paste_masks_in_image


def check_target(index, image, target, num_classes):
    """A clear ValueError naming the image index and the key for a malformed target."""
    height, width = image.shape[-2:]
    boxes, labels, masks = target.get("boxes"), target.get("labels"), target.get("masks")
    if boxes is None or labels is None or masks is None:
        raise ValueError(f"target {index}: needs 'boxes', 'labels' and 'masks'")
    n = boxes.shape[0] if boxes.ndim == 2 else -1
    if boxes.shape != (n, 4):
        raise ValueError(f"target {index}: boxes must be [N, 4], got {boxes.shape}")
    if labels.shape != (n,):
        raise ValueError(f"target {index}: labels must be [{n}], got {labels.shape}")
    if masks.shape != (n, height, width):
        raise ValueError(
            f"target {index}: masks must be [{n}, {height}, {width}] like the image, got "
            f"{masks.shape}"
        )
    min_size = target.get("min_size")
    if min_size is not None and (
        not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 1
    ):
        raise ValueError(f"target {index}: min_size must be a whole number >= 1, got {min_size!r}")
    host_labels = labels.numpy()
    if n and (host_labels.min() < 1 or host_labels.max() > num_classes):
        raise ValueError(
            f"target {index}: labels must be in 1..{num_classes}, got {sorted(set(host_labels))}"
        )
    host_boxes = boxes.numpy()
    bad = np.flatnonzero(
        ~np.isfinite(host_boxes).all(1) | (host_boxes[:, 2:] <= host_boxes[:, :2]).any(1)
    )
    if bad.size:
        raise ValueError(
            f"target {index}: box {bad[0]} {host_boxes[bad[0]].tolist()} is empty or not finite"
        )


class RCNNTransform:
    """``transform(images, targets=None) -> (batch, image_sizes, targets)`` and
    ``transform.postprocess(detections, image_sizes, original_sizes)``; see the module
    docstring. No parameters: the mean and std are constants of the config."""

    def __init__(self, cfg):
        self.num_classes = cfg.num_classes
        self.min_size, self.max_size = cfg.min_size, cfg.max_size
        self.size_divisible = cfg.size_divisible
        self.mean = np.asarray(cfg.image_mean, dtype=np.float64)
        self.std = np.asarray(cfg.image_std, dtype=np.float64)

    def __call__(self, images, targets=None):
        if targets is not None and len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        resized, new_targets = [], []
        for index, image in enumerate(images):
            if image.ndim != 3 or image.shape[0] != 3 or image.dtype.kind != "f":
                raise ValueError(
                    f"image {index}: expected a float Tensor [3, H, W], got {image.shape} "
                    f"{image.dtype}"
                )
            height, width = image.shape[-2:]
            min_size = self.min_size
            if targets is not None:
                check_target(index, image, targets[index], self.num_classes)
                min_size = targets[index].get("min_size", self.min_size)
            size = resized_size(height, width, resize_scale(height, width, min_size, self.max_size))
            resized.append(resize_image(normalize(image, self.mean, self.std), size))
            if targets is None:
                continue
            target = dict(targets[index])
            target["boxes"] = resize_boxes(target["boxes"], (height, width), size)
            if target.get("crowd_boxes") is not None:
                target["crowd_boxes"] = resize_boxes(target["crowd_boxes"], (height, width), size)
            target["mask_scale"] = (width / size[1], height / size[0])
            new_targets.append(target)
        batch, image_sizes = batch_images(resized, self.size_divisible)
        return batch, image_sizes, (new_targets if targets is not None else None)

    def postprocess(self, detections, image_sizes, original_sizes):
        """Boxes back to the original images, masks pasted into them (probabilities)."""
        results = []
        for detection, size, original in zip(detections, image_sizes, original_sizes):
            boxes = resize_boxes(detection["boxes"], size, original)
            masks = paste_masks_in_image(detection["masks"][:, 0], boxes, original, threshold=None)
            results.append(
                {
                    "boxes": boxes,
                    "labels": detection["labels"],
                    "scores": detection["scores"],
                    "masks": masks,
                }
            )
        return results
