"""Anchor coverage report (minimask/models/anchor_coverage.py) on hand-made cases.

References: hand computation of the anchors (AnchorGenerator's rounding, see
test_models_targets.py) and of IoUs; exact comparisons (the anchors are integers).
"""

import numpy as np

import minimask
from minimask.models import MaskRCNNConfig
from minimask.models.anchor_coverage import anchor_coverage, image_anchors, padded_grid_sizes


def _item(boxes, size=128):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    target = {"boxes": minimask.tensor(boxes)}
    return minimask.zeros(3, size, size), target


def test_grid_sizes_follow_the_backbone_and_p6_max_pool():
    assert padded_grid_sizes(128, 160) == [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]


def test_a_box_equal_to_an_anchor_is_covered_and_a_thin_box_is_not():
    """Small preset at 128 pixels: P4 has stride 16 and 32-pixel anchors; the square one at
    cell (y, x) = (2, 2) is (32 - 16, 32 - 16, 32 + 16, 32 + 16) = (16, 16, 48, 48), so that
    box has best IoU exactly 1. A 60 x 4 box overlaps no anchor by 0.7 (its area is 240,
    an 8 x 8 anchor gives IoU <= 64 / 240): only the low-quality rule gives it positives."""
    cfg = MaskRCNNConfig.small(1)
    anchors, scale = image_anchors(cfg, 128, 128)
    assert scale == (1.0, 1.0)
    assert (anchors.numpy() == [16, 16, 48, 48]).all(axis=1).any()
    dataset = [_item([[16, 16, 48, 48]]), None, _item([[30, 60, 90, 64]]), _item([])]
    report = anchor_coverage(dataset, cfg)
    assert report.best_iou[0] == 1.0
    assert report.best_iou[1] < 0.7
    np.testing.assert_array_equal(report.low_quality_only, [False, True])
    np.testing.assert_array_equal(report.no_positive, [False, False])
    assert "2 boxes" in report.summary() and "1 (50%)" in report.summary()


def test_a_box_whose_best_anchor_belongs_to_another_box_has_no_positive():
    """A = (16, 16, 48, 48) is the P4 anchor (IoU 1); B = (16, 16, 48, 47) has its best IoU,
    32 * 31 / 1024 = 0.97, with the same anchor, which the Matcher gives to A (IoU 1 > 0.97).
    B's next best anchors are the 2:1 and 1:2 ones at that cell, (9, 21, 55, 43) and its
    transpose, with IoU 704 / 1300 = 0.54 < 0.7 (hand computation), and the low-quality
    rule hands B's best anchor to A, its own best box: B has no positive."""
    cfg = MaskRCNNConfig.small(1)
    report = anchor_coverage([_item([[16, 16, 48, 48], [16, 16, 48, 47]])], cfg)
    np.testing.assert_allclose(report.best_iou, [1.0, 31 / 32], rtol=1e-6)
    np.testing.assert_array_equal(report.no_positive, [False, True])
    np.testing.assert_array_equal(report.low_quality_only, [False, False])
