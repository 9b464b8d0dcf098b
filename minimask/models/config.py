"""``MaskRCNNConfig``: every number of the model and of its training in one dataclass.

The defaults are the paper's (He et al., "Mask R-CNN", 2017) and torchvision's, except
where a small input calls for scaled values; two presets size the model for a 2-core CPU:

    MaskRCNNConfig.small(num_classes)   backbone channels (32, 64, 128, 256), FPN 64,
                                        box head 2 x fc 256, mask head 4 x conv 64
    MaskRCNNConfig.tiny(num_classes)    half of that everywhere, for tests

Scaling with the input size. The paper trains on images resized to a shorter side of 800
pixels, with anchors of 32..512 pixels on P2..P6 and a canonical size of 224 in the FPN
level rule.
``scaled_to(min_size)`` multiplies both by ``min_size / 512``, so a 512-pixel input gets the
paper's values; at the presets' 128 pixels the anchors are 8, 16, 32, 64 and 128 pixels and
the canonical size is 56 (a 56-pixel box is pooled from P4, as a 224-pixel box is in the
paper). The shapes data have objects of 20 to 50 pixels in a 128-pixel image.

Multi-scale training (detectron2's ResizeShortestEdge with a list of sizes):
``min_size_train=(160, 176, 192)`` resizes each training image to a shortest side drawn
from the list, one draw per image and step, seeded like the flips (engine/batches.py);
``min_size`` stays the one size of evaluation and prediction, and the anchors are scaled
to it. The default, an empty tuple, trains at ``min_size``.

Ablation switches (the paper's Table 2):
    roi_pooler            "align" (RoIAlign, the paper's) | "warp" (RoIWarp) | "pool" (RoIPool)
    mask_loss             "sigmoid" (per-class binary masks, the paper's) | "softmax"
                          (a multinomial over the K classes and background at every pixel)
    class_agnostic_masks  False (one mask per class, the paper's) | True (one mask in all)

``to_dict``/``from_dict`` turn it into plain JSON-able values (checkpoints store it).
"""

import dataclasses
from dataclasses import dataclass

ROI_POOLERS = ("align", "warp", "pool")
MASK_LOSSES = ("sigmoid", "softmax")


@dataclass
class MaskRCNNConfig:
    num_classes: int  # K object classes; labels are 1..K, 0 is background

    # Input: normalised by the model, resized (shortest side min_size, longest at most
    # max_size) and padded to a multiple of size_divisible. min_size_train: the shortest
    # sides of multi-scale training (detectron2's INPUT.MIN_SIZE_TRAIN), one drawn per
    # image and step (engine/batches.py); empty: training uses min_size too. Evaluation
    # and prediction always use min_size; max_size caps every size.
    min_size: int = 128
    max_size: int = 192
    min_size_train: tuple = ()
    size_divisible: int = 32
    image_mean: tuple = (0.485, 0.456, 0.406)
    image_std: tuple = (0.229, 0.224, 0.225)

    # Backbone (ResNetGN) and FPN.
    stage_channels: tuple = (32, 64, 128, 256)
    blocks_per_stage: tuple = (1, 1, 1, 1)
    num_groups: int = 8
    fpn_channels: int = 64

    # Anchors: one size per level P2..P6, the same aspect ratios (h / w) on every level.
    anchor_sizes: tuple = (8, 16, 32, 64, 128)
    anchor_aspect_ratios: tuple = (0.5, 1.0, 2.0)

    # RPN.
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_min_size: float = 1e-3

    # RoI heads: proposal matching and sampling.
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    box_reg_weights: tuple = (10.0, 10.0, 5.0, 5.0)
    # RoI pooling: output sizes, samples per bin, FPN level rule (level_mapper.py).
    roi_pooler: str = "align"
    box_pool_size: int = 7
    mask_pool_size: int = 14
    sampling_ratio: int = 2
    canonical_size: float = 56.0
    canonical_level: int = 4
    # Heads.
    box_head_dim: int = 256
    mask_head_channels: int = 64
    mask_head_convs: int = 4
    mask_loss: str = "sigmoid"
    class_agnostic_masks: bool = False

    # Inference.
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_min_size: float = 1e-2
    detections_per_img: int = 100
    mask_threshold: float = 0.5

    # Training: SGD with momentum, linear warm-up, step decay at fractions of max_iters.
    max_iters: int = 1000
    batch_size: int = 2
    base_lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    warmup_factor: float = 0.001
    lr_steps: tuple = (0.75, 0.9)
    lr_gamma: float = 0.1
    horizontal_flip_prob: float = 0.5
    checkpoint_period: int = 500
    seed: int = 0

    def __post_init__(self):
        if self.num_classes < 1:
            raise ValueError(f"MaskRCNNConfig: num_classes must be >= 1, got {self.num_classes}")
        if self.roi_pooler not in ROI_POOLERS:
            raise ValueError(
                f"MaskRCNNConfig: roi_pooler must be one of {ROI_POOLERS}, got {self.roi_pooler!r}"
            )
        if self.mask_loss not in MASK_LOSSES:
            raise ValueError(
                f"MaskRCNNConfig: mask_loss must be one of {MASK_LOSSES}, got {self.mask_loss!r}"
            )
        if not isinstance(self.min_size_train, tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in self.min_size_train
        ):
            raise ValueError(
                f"MaskRCNNConfig: min_size_train must be a tuple of shortest sides, whole "
                f"numbers >= 1, got {self.min_size_train!r}"
            )
        if len(self.anchor_sizes) != 5:
            raise ValueError(
                f"MaskRCNNConfig: anchor_sizes needs one size per level P2..P6, got "
                f"{self.anchor_sizes}"
            )

    @property
    def mask_resolution(self):
        """Side of the predicted masks: the deconvolution doubles the pooled size (28)."""
        return 2 * self.mask_pool_size

    def scaled_to(self, min_size, max_size=None):
        """A copy for inputs whose shortest side is ``min_size``: anchor sizes and the
        canonical size are the paper's (32..512, 224) times min_size / 512 (module
        docstring); max_size defaults to 1.5 * min_size."""
        factor = min_size / 512
        return dataclasses.replace(
            self,
            min_size=int(min_size),
            max_size=int(max_size if max_size is not None else round(1.5 * min_size)),
            anchor_sizes=tuple(round(s * factor, 2) for s in (32, 64, 128, 256, 512)),
            canonical_size=round(224 * factor, 2),
        )

    @classmethod
    def small(cls, num_classes, **overrides):
        """The model the benchmarks train and the demo builds on (demo.py resizes its images to
        192 pixels and narrows the mask head to 32 channels): see the module docstring. Proposal
        and RoI counts are scaled to a 128-pixel image (1/40 of the paper's 800 x 1333
        pixels): 1000 proposals per image in training and 500 at test time instead of
        2000 / 1000, 64 sampled anchors instead of 256 and 128 sampled RoIs instead of 512
        (a 128-pixel image holds a few objects, so the paper's sample sizes would be almost
        all background and dilute the positives' share of each loss)."""
        base = cls(
            num_classes=num_classes,
            rpn_batch_size_per_image=64,
            rpn_pre_nms_top_n_train=1000,
            rpn_post_nms_top_n_train=1000,
            rpn_pre_nms_top_n_test=500,
            rpn_post_nms_top_n_test=500,
            box_batch_size_per_image=128,
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def tiny(cls, num_classes, **overrides):
        """A quarter of the small model's compute, for tests: half the channels, fewer
        proposals and samples, 64-pixel inputs."""
        base = cls(
            num_classes=num_classes,
            stage_channels=(8, 16, 32, 64),
            num_groups=4,
            fpn_channels=16,
            box_head_dim=32,
            mask_head_channels=16,
            rpn_batch_size_per_image=64,
            rpn_pre_nms_top_n_train=200,
            rpn_post_nms_top_n_train=100,
            rpn_pre_nms_top_n_test=100,
            rpn_post_nms_top_n_test=50,
            box_batch_size_per_image=32,
            detections_per_img=20,
        ).scaled_to(64, 96)
        return dataclasses.replace(base, **overrides)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Inverse of to_dict (lists from JSON become tuples); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"MaskRCNNConfig.from_dict: unknown fields {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
