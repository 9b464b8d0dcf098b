"""The smallest MaskRCNN that still runs every stage, and its batch, for the CUDA model
test (tests/test_cuda_mask_rcnn.py) and the counter table (benchmarks/cuda_counters.py).

numba's simulator runs a kernel as Python threads, about one unit of time per work item
(a matmul: per thread of its 16 x 16 tiles), so the model is the tiny preset shrunk until
each stage does the least work that still exercises it:

    input      32 x 32 (the smallest batch side: P5 has stride 32), min_size = max_size =
               32, so no image is resized; the second image, 24 x 32, is padded
    backbone   channels (4, 4, 8, 8), GroupNorm with 2 groups; FPN 4 channels
    RPN        one aspect ratio (one anchor a cell: 85 anchors), 16 anchors sampled, the
               16 best of each level before NMS and 8 after
    RoI heads  8 RoIs sampled an image (the ground truths are among the candidates, so
               there are positives), box pool 2 x 2, box head 8 wide; mask pool 4 x 4,
               one conv of 4 channels, 8 x 8 masks; 4 detections an image

Two classes, so that the class-specific box deltas and mask channels are picked by label.
"""

import dataclasses

import numpy as np

import minimask
from minimask.models import MaskRCNN, MaskRCNNConfig

NUM_CLASSES = 2


def config():
    """MaskRCNNConfig.tiny shrunk as the module docstring says."""
    return dataclasses.replace(
        MaskRCNNConfig.tiny(NUM_CLASSES).scaled_to(32, 32),
        stage_channels=(4, 4, 8, 8),
        num_groups=2,
        fpn_channels=4,
        anchor_aspect_ratios=(1.0,),
        rpn_batch_size_per_image=16,
        rpn_pre_nms_top_n_train=16,
        rpn_post_nms_top_n_train=8,
        rpn_pre_nms_top_n_test=16,
        rpn_post_nms_top_n_test=8,
        box_batch_size_per_image=8,
        box_pool_size=2,
        mask_pool_size=4,
        box_head_dim=8,
        mask_head_channels=4,
        mask_head_convs=1,
        detections_per_img=4,
    )


def model(dtype, device):
    """A MaskRCNN of ``config()`` with the weights of seed 0, in ``dtype`` on ``device``:
    the same weights for every call."""
    minimask.manual_seed(0)
    return MaskRCNN(config()).to(dtype).to(device)


# (height, width), object boxes (x1, y1, x2, y2) and their labels
IMAGES = (
    ((32, 32), [[4, 6, 20, 22], [16, 12, 30, 30]], [1, 2]),
    ((24, 32), [[8, 4, 26, 18]], [2]),
)


def batch(dtype, device):
    """The images (float [3, H, W]) and targets (boxes, labels, masks) of ``IMAGES``: a
    noisy background with flat squares of a grey level per label, their masks the boxes."""
    rng = np.random.default_rng(0)
    images, targets = [], []
    for (height, width), boxes, labels in IMAGES:
        image = rng.uniform(0.3, 0.5, size=(3, height, width))
        masks = np.zeros((len(boxes), height, width), np.uint8)
        for k, ((x1, y1, x2, y2), label) in enumerate(zip(boxes, labels)):
            image[:, y1:y2, x1:x2] = 0.2 + 0.3 * label
            masks[k, y1:y2, x1:x2] = 1
        images.append(minimask.tensor(image, dtype=dtype, device=device))
        targets.append(
            {
                "boxes": minimask.tensor(np.float32(boxes), device=device),
                "labels": minimask.tensor(np.int64(labels), device=device),
                "masks": minimask.tensor(masks, device=device),
            }
        )
    return images, targets
