"""minimask.viz: every figure renders to a PNG, and the drawn artists hold the given data.

The RoIAlign pictures are checked against the real kernel: the bilinear mean of a feature
map at `roi_align_sample_points`, read through `bilinear_neighbours`, must reproduce
`minimask.ops.roi_align` bin for bin, so the drawing shows the points the kernel samples.
"""

import json
import os

import matplotlib
import numpy as np
import pytest
from PIL import Image

import minimask
from minimask import viz
from minimask.models.anchors import AnchorGenerator
from minimask.ops.roi_align import roi_align

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def by_gid(artists, gid):
    return [a for a in artists if a.get_gid() == gid]


def rect_box(patch):
    x, y = patch.get_xy()
    return [x, y, x + patch.get_width(), y + patch.get_height()]


def check_png(fig, tmp_path, name="fig.png"):
    path = viz.save_figure(fig, tmp_path / name)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    with Image.open(path) as im:
        assert im.format == "PNG"
        width, height = fig.get_size_inches() * 100
        assert im.size == (round(width), round(height))
    return path


def random_image(rng, height=40, width=60):
    return rng.random((3, height, width))


# ---------------------------------------------------------------------------- instances
def test_draw_instances_boxes_labels_masks(tmp_path):
    rng = np.random.default_rng(0)
    image = random_image(rng)
    boxes = np.array([[5, 4, 25, 30], [30.5, 10.25, 55, 38], [0, 0, 10, 10]], dtype=np.float32)
    labels = np.array([1, 2, 1])
    scores = np.array([0.9, 0.3, 0.75])
    masks = rng.random((3, 1, 40, 60))  # probabilities
    names = ["background", "circle", "square"]
    fig = viz.draw_instances(
        minimask.tensor(image),
        minimask.tensor(boxes),
        minimask.tensor(labels),
        minimask.tensor(scores),
        masks=minimask.tensor(masks),
        class_names=names,
        score_threshold=0.5,
    )
    ax = fig.axes[0]
    kept = [0, 2]
    rects = by_gid(ax.patches, "box")
    np.testing.assert_allclose([rect_box(r) for r in rects], boxes[kept])
    texts = by_gid(ax.texts, "label")
    assert [t.get_text() for t in texts] == ["circle 0.90", "circle 0.75"]
    assert [t.get_position() for t in texts] == [(5.0, 4.0), (0.0, 0.0)]
    # a caption sits above its box, except where the box touches the image's top edge
    # (y1 < 6% of the height): there it goes inside the box, not clipped away
    assert [t.get_verticalalignment() for t in texts] == ["bottom", "top"]
    overlays = by_gid(ax.images, "mask")
    assert len(overlays) == 2
    for overlay, i in zip(overlays, kept):
        rgba = np.asarray(overlay.get_array())
        drawn = rgba[..., 3] > 0
        np.testing.assert_array_equal(drawn, masks[i, 0] >= 0.5)
        np.testing.assert_allclose(
            rgba[drawn, :3], np.broadcast_to(viz.instance_color(i), (drawn.sum(), 3))
        )
        assert overlay.get_extent() == [0, 60, 40, 0]
    # colours follow the instance index, and differ between instances
    assert rects[0].get_edgecolor()[:3] == pytest.approx(viz.instance_color(0))
    assert rects[1].get_edgecolor()[:3] == pytest.approx(viz.instance_color(2))
    assert len(set(viz.PALETTE)) == len(viz.PALETTE)
    # the image itself, at pixel-edge extent so boxes land on pixel boundaries
    (shown,) = by_gid(ax.images, "image")
    np.testing.assert_allclose(shown.get_array(), image.transpose(1, 2, 0))
    check_png(fig, tmp_path)


def test_draw_instances_variants(tmp_path):
    rng = np.random.default_rng(1)
    image = (rng.random((30, 20, 3)) * 255).astype(np.uint8)  # H x W x 3 uint8
    boxes = np.array([[2, 3, 12, 20], [5, 5, 18, 28]])
    # dict class names, no scores: every instance drawn, caption is the name only
    fig = viz.draw_instances(image, boxes, labels=[3, 7], class_names={3: "cat", 7: "dog"})
    ax = fig.axes[0]
    assert [t.get_text() for t in by_gid(ax.texts, "label")] == ["cat", "dog"]
    np.testing.assert_allclose(by_gid(ax.images, "image")[0].get_array(), image / 255.0)
    check_png(fig, tmp_path, "a.png")
    # no labels: caption is the score; 0/1 masks [D, H, W]
    masks = np.zeros((2, 30, 20), dtype=np.uint8)
    masks[0, 3:20, 2:12] = 1
    fig = viz.draw_instances(image, boxes, scores=[0.5, 0.25], masks=masks)
    ax = fig.axes[0]
    assert [t.get_text() for t in by_gid(ax.texts, "label")] == ["0.50", "0.25"]
    overlays = by_gid(ax.images, "mask")
    np.testing.assert_array_equal(np.asarray(overlays[0].get_array())[..., 3] > 0, masks[0] == 1)
    assert not (np.asarray(overlays[1].get_array())[..., 3] > 0).any()
    check_png(fig, tmp_path, "b.png")
    # M x M masks are pasted into their boxes (the inference rule)
    fig = viz.draw_instances(image, boxes[:1], masks=np.ones((1, 1, 7, 7)))
    drawn = np.asarray(by_gid(fig.axes[0].images, "mask")[0].get_array())[..., 3] > 0
    expected = np.zeros((30, 20), dtype=bool)
    expected[3:20, 2:12] = True  # pixel centres inside the box
    np.testing.assert_array_equal(drawn, expected)
    # nothing at all; an existing Axes is drawn into
    fig = viz.draw_instances(image)
    assert len(fig.axes[0].patches) == 0 and len(fig.axes[0].texts) == 0
    fig2 = viz.draw_instances(image, boxes, ax=fig.axes[0], title="mine")
    assert fig2 is fig and fig.axes[0].get_title() == "mine"
    with pytest.raises(ValueError, match="different numbers"):
        viz.draw_instances(image, boxes, labels=[1])


# ---------------------------------------------------------------------------- anchors
def test_draw_anchors(tmp_path):
    anchors = np.array([[-10, -5, 20, 15], [0, 0, 32, 32], [40, 30, 80, 70]], dtype=np.float64)
    fig = viz.draw_anchors((48, 64), minimask.tensor(anchors))
    ax = fig.axes[0]
    np.testing.assert_allclose([rect_box(p) for p in by_gid(ax.patches, "anchor")], anchors)
    (centres,) = by_gid(ax.collections, "anchor centres")
    np.testing.assert_allclose(
        centres.get_offsets(),
        np.stack([(anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2], 1),
    )
    x0, x1 = ax.get_xlim()
    y1, y0 = ax.get_ylim()  # y inverted
    assert x0 < -10 and x1 > 80 and y0 < -5 and y1 > 70  # anchors shown whole
    check_png(fig, tmp_path)


def test_draw_anchors_at_one_cell(tmp_path):
    gen = AnchorGenerator(sizes=((16, 32), (64,)), aspect_ratios=(0.5, 1.0, 2.0))
    image_size, grid_sizes = (64, 96), [(8, 12), (4, 6)]
    fig = viz.draw_anchors_at(gen, image_size, grid_sizes, level=0, position=(2, 5))
    ax = fig.axes[0]
    drawn = np.array([rect_box(p) for p in by_gid(ax.patches, "anchor")])
    assert drawn.shape == (6, 4)
    expected = gen.grid_anchors(grid_sizes, [(8, 8), (16, 16)])[0].numpy()
    np.testing.assert_allclose(drawn, expected[(2 * 12 + 5) * 6 : (2 * 12 + 5) * 6 + 6])
    # independent: centred on the cell's top-left corner, areas near size^2
    np.testing.assert_allclose((drawn[:, 0] + drawn[:, 2]) / 2, 5 * 8)
    np.testing.assert_allclose((drawn[:, 1] + drawn[:, 3]) / 2, 2 * 8)
    areas = (drawn[:, 2] - drawn[:, 0]) * (drawn[:, 3] - drawn[:, 1])
    np.testing.assert_allclose(areas, [256, 1024] * 3, rtol=0.1)
    labels = [p.get_label() for p in by_gid(ax.patches, "anchor")]
    assert labels[:2] == ["size 16, ratio 0.5", "size 32, ratio 0.5"]
    (cell,) = by_gid(ax.patches, "cell")
    assert rect_box(cell) == [40, 16, 48, 24]
    check_png(fig, tmp_path)
    fig = viz.draw_anchors_at(gen, image_size, grid_sizes, level=1, position=(3, 5))
    assert len(by_gid(fig.axes[0].patches, "anchor")) == 3
    with pytest.raises(ValueError, match="outside"):
        viz.draw_anchors_at(gen, image_size, grid_sizes, level=1, position=(4, 0))


def test_draw_matched_anchors(tmp_path):
    rng = np.random.default_rng(2)
    image = random_image(rng)
    anchors = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [8, 6, 22, 18], [30, 30, 50, 40]])
    gt = np.array([6, 5, 21, 19])
    matches = np.array([-1, 0, 0, 1])  # Matcher output
    fig = viz.draw_matched_anchors(image, anchors, gt, minimask.tensor(matches), gt_index=0)
    ax = fig.axes[0]
    np.testing.assert_allclose([rect_box(p) for p in by_gid(ax.patches, "anchor")], anchors[1:3])
    assert rect_box(by_gid(ax.patches, "gt")[0]) == list(gt)
    check_png(fig, tmp_path)
    fig = viz.draw_matched_anchors(image, anchors, gt, matches == 1)
    np.testing.assert_allclose(
        [rect_box(p) for p in by_gid(fig.axes[0].patches, "anchor")], anchors[3:]
    )
    fig = viz.draw_matched_anchors(None, anchors, gt, [0, 2], image_size=(40, 60))
    np.testing.assert_allclose(
        [rect_box(p) for p in by_gid(fig.axes[0].patches, "anchor")], anchors[[0, 2]]
    )


# ---------------------------------------------------------------------------- proposals, rois
def test_draw_proposals(tmp_path):
    rng = np.random.default_rng(3)
    image = random_image(rng)
    corner = rng.random((50, 2)) * 40
    before = np.concatenate([corner, corner + 1 + rng.random((50, 2)) * 20], axis=1)
    after = before[:7]
    fig = viz.draw_proposals(minimask.tensor(image), minimask.tensor(before), after)
    assert len(fig.axes) == 2
    for ax, boxes in zip(fig.axes, (before, after)):
        np.testing.assert_allclose([rect_box(p) for p in by_gid(ax.patches, "proposal")], boxes)
    assert "50" in fig.axes[0].get_title() and "7" in fig.axes[1].get_title()
    check_png(fig, tmp_path)
    fig = viz.draw_proposals(image, before, np.zeros((0, 4)))
    assert len(by_gid(fig.axes[1].patches, "proposal")) == 0


def test_draw_sampled_rois(tmp_path):
    rng = np.random.default_rng(4)
    image = random_image(rng)
    pos = np.array([[5, 5, 20, 20], [6, 4, 21, 19]])
    neg = np.array([[30, 5, 50, 30], [0, 20, 15, 39], [40, 30, 59, 39]])
    gt = np.array([[5, 5, 21, 20]])
    fig = viz.draw_sampled_rois(image, minimask.tensor(pos), neg, gt_boxes=gt)
    ax = fig.axes[0]
    positives = by_gid(ax.patches, "positive")
    negatives = by_gid(ax.patches, "negative")
    np.testing.assert_allclose([rect_box(p) for p in positives], pos)
    np.testing.assert_allclose([rect_box(p) for p in negatives], neg)
    np.testing.assert_allclose([rect_box(p) for p in by_gid(ax.patches, "gt")], gt)
    assert positives[0].get_edgecolor()[:3] != negatives[0].get_edgecolor()[:3]
    check_png(fig, tmp_path)


# ---------------------------------------------------------------------------- RoIAlign
def bilinear_mean(feature, points):
    """Per bin (PH, PW): the mean over its samples of the bilinear value read through
    `bilinear_neighbours`, summed in the kernel's order."""
    height, width = feature.shape
    ph, pw, gh, gw, _ = points.shape
    out = np.zeros((ph, pw))
    for i in range(ph):
        for j in range(pw):
            acc = 0.0
            for iy in range(gh):
                for ix in range(gw):
                    cells, w = viz.bilinear_neighbours(*points[i, j, iy, ix], height, width)
                    for (r, c), wk in zip(cells, w):
                        acc += wk * feature[r, c]
            out[i, j] = acc / max(gh * gw, 1)
    return out


ROI_CASES = [
    # box (x1, y1, x2, y2), output_size, spatial_scale, sampling_ratio, aligned
    ((3.2, 1.7, 14.9, 9.3), (3, 4), 1.0, 2, True),
    ((3.2, 1.7, 14.9, 9.3), (3, 4), 1.0, 2, False),
    ((3.2, 1.7, 14.9, 9.3), 2, 1.0, -1, True),  # adaptive: grid_h != grid_w
    ((-6.0, -3.5, 30.0, 25.0), (5, 3), 0.5, 0, True),  # past the border: clamping and zeros
    ((-12.0, -9.0, 70.0, 50.0), (4, 4), 0.5, 3, False),  # samples beyond [-1, H] are 0
    ((10.0, 12.0, 10.0, 12.0), (2, 2), 1.0, 2, False),  # degenerate: 1 x 1 cell
    ((10.0, 12.0, 10.0, 12.0), (2, 2), 1.0, -1, True),  # empty aligned box: 0 samples
    ((40.0, 8.0, 64.0, 56.0), (7, 7), 0.25, -1, True),  # a stride-4 level
]


@pytest.mark.parametrize("box, output_size, scale, ratio, aligned", ROI_CASES)
def test_sample_points_reproduce_roi_align(box, output_size, scale, ratio, aligned):
    rng = np.random.default_rng(5)
    height, width = 13, 17
    feature = rng.standard_normal((height, width))
    points = viz.roi_align_sample_points(box, output_size, scale, ratio, aligned)
    expected = roi_align(
        minimask.tensor(feature[None, None]),
        minimask.tensor(np.array([[0.0, *box]])),
        output_size,
        spatial_scale=scale,
        sampling_ratio=ratio,
        aligned=aligned,
    ).numpy()[0, 0]
    assert points.shape[:2] == expected.shape
    np.testing.assert_allclose(bilinear_mean(feature, points), expected, rtol=1e-12, atol=1e-15)


def test_sample_point_geometry():
    # aligned: box (2, 4, 6, 8) at scale 1 starts at -0.5 shifted corner (1.5, 3.5)
    points = viz.roi_align_sample_points((2, 4, 6, 8), (2, 2), 1.0, 2, True)
    assert points.shape == (2, 2, 2, 2, 2)
    np.testing.assert_allclose(points[0, 0, :, :, 0], [[4.0, 4.0], [5.0, 5.0]])  # y
    np.testing.assert_allclose(points[0, 0, :, :, 1], [[2.0, 3.0], [2.0, 3.0]])  # x
    np.testing.assert_allclose(points[1, 1, 1, 1], [7.0, 5.0])
    # adaptive: ceil(roi / P) samples per axis; a (batch, x1, y1, x2, y2) row works too
    points = viz.roi_align_sample_points((0, 0, 0, 9, 4), (2, 2), 1.0, -1, True)
    assert points.shape == (2, 2, 2, 5, 2)  # roi 4 tall, 9 wide


def test_bilinear_neighbours_match_kernel_at_border():
    """A box (x, y, x + 1, y + 1), aligned, 1 x 1 output, 1 sample: its only sample is at
    exactly (y, x) (dyadic numbers, exact arithmetic), so roi_align's output is the
    bilinear value there. The points cover the border cases: y = -1 and y = H exactly,
    just outside them, the clamp bands, integers and y_low = H - 1."""
    rng = np.random.default_rng(6)
    height, width = 5, 7
    feature = rng.standard_normal((height, width))
    ys = np.arange(-1.5, height + 0.75, 0.25)
    xs = np.arange(-1.5, width + 0.75, 0.25)
    yy, xx = (a.reshape(-1) for a in np.meshgrid(ys, xs, indexing="ij"))
    rois = np.stack([np.zeros_like(yy), xx, yy, xx + 1, yy + 1], axis=1)
    out = roi_align(
        minimask.tensor(feature[None, None]), minimask.tensor(rois), 1, 1.0, 1, True
    ).numpy()[:, 0, 0, 0]
    for k, (y, x) in enumerate(zip(yy, xx)):
        points = viz.roi_align_sample_points(rois[k], 1, 1.0, 1, True)
        assert tuple(points[0, 0, 0, 0]) == (y, x)
        cells, w = viz.bilinear_neighbours(y, x, height, width)
        value = float(np.sum(w * feature[cells[:, 0], cells[:, 1]]))
        assert value == pytest.approx(out[k], rel=1e-12, abs=1e-15), (y, x)
        outside = y < -1 or y > height or x < -1 or x > width
        assert len(cells) == (0 if outside else 4)
        if not outside:
            assert w.sum() == pytest.approx(1.0)
            assert (cells >= 0).all() and (cells[:, 0] < height).all()
            assert (cells[:, 1] < width).all()
    # spot checks of the rule
    cells, w = viz.bilinear_neighbours(-1.0, 2.5, height, width)  # on -1: clamped to row 0
    np.testing.assert_array_equal(cells, [[0, 2], [0, 3], [1, 2], [1, 3]])
    np.testing.assert_allclose(w, [0.5, 0.5, 0, 0])
    cells, w = viz.bilinear_neighbours(4.5, 6.25, height, width)  # past the last row/column
    np.testing.assert_array_equal(cells, [[4, 6]] * 4)
    np.testing.assert_allclose(w, [1, 0, 0, 0])
    assert len(viz.bilinear_neighbours(5.01, 3.0, height, width)[0]) == 0


def test_draw_roi_align_grid(tmp_path):
    rng = np.random.default_rng(7)
    feature = rng.random((10, 12))
    box, size, scale = (-2.0, 4.0, 38.0, 46.0), (3, 2), 0.25
    fig = viz.draw_roi_align_grid(
        minimask.tensor(feature[None]), box, size, spatial_scale=scale, bin=(2, 1)
    )
    ax = fig.axes[0]
    points = viz.roi_align_sample_points(box, size, scale, 2, True)
    (samples,) = by_gid(ax.collections, "samples")
    np.testing.assert_allclose(samples.get_offsets(), points.reshape(-1, 2)[:, ::-1])
    (chosen,) = by_gid(ax.collections, "bin samples")
    np.testing.assert_allclose(chosen.get_offsets(), points[2, 1].reshape(-1, 2)[:, ::-1])
    expected = np.concatenate(
        [viz.bilinear_neighbours(y, x, 10, 12)[0] for y, x in points[2, 1].reshape(-1, 2)]
    )
    (neighbours,) = by_gid(ax.collections, "neighbours")
    np.testing.assert_allclose(neighbours.get_offsets(), expected[:, ::-1])
    (roi,) = by_gid(ax.patches, "roi")  # the box as the kernel sees it: scaled, shifted -0.5
    np.testing.assert_allclose(rect_box(roi), np.array(box) * scale - 0.5)
    (image,) = by_gid(ax.images, "feature map")
    np.testing.assert_allclose(image.get_array(), feature)
    assert image.get_extent() == [-0.5, 11.5, 9.5, -0.5]  # cell (i, j) centred at (j, i)
    value = roi_align(
        minimask.tensor(feature[None, None]),
        minimask.tensor(np.array([[0.0, *box]])),
        size,
        scale,
        2,
        True,
    ).numpy()[0, 0, 2, 1]
    assert f"{value:.4g}" in ax.get_title()
    check_png(fig, tmp_path)
    # unaligned, adaptive, samples outside the map are crossed out
    fig = viz.draw_roi_align_grid(
        feature, (-40, -40, 60, 30), 2, sampling_ratio=-1, aligned=False, bin=(0, 0)
    )
    ax = fig.axes[0]
    points = viz.roi_align_sample_points((-40, -40, 60, 30), 2, 1.0, -1, False)
    flat = points.reshape(-1, 2)
    outside = (flat[:, 0] < -1) | (flat[:, 0] > 10) | (flat[:, 1] < -1) | (flat[:, 1] > 12)
    (zeros,) = by_gid(ax.collections, "zero samples")
    np.testing.assert_allclose(zeros.get_offsets(), flat[outside][:, ::-1])
    check_png(fig, tmp_path, "b.png")
    with pytest.raises(ValueError, match="bin"):
        viz.draw_roi_align_grid(feature, box, size, bin=(3, 0))


# ---------------------------------------------------------------------------- masks, losses
def test_draw_mask_targets(tmp_path):
    rng = np.random.default_rng(8)
    targets = rng.random((5, 1, 14, 14))
    preds = rng.random((5, 14, 14))
    fig = viz.draw_mask_targets(minimask.tensor(targets), preds, pairs_per_row=2)
    shown_t = [im for ax in fig.axes for im in by_gid(ax.images, "target")]
    shown_p = [im for ax in fig.axes for im in by_gid(ax.images, "prediction")]
    assert len(shown_t) == len(shown_p) == 5
    for i in range(5):
        np.testing.assert_allclose(shown_t[i].get_array(), targets[i, 0])
        np.testing.assert_allclose(shown_p[i].get_array(), preds[i])
        assert shown_t[i].axes.get_title() == f"target {i}"
        assert shown_p[i].axes.get_title() == f"pred {i}"
        assert shown_t[i].get_clim() == (0.0, 1.0)
    check_png(fig, tmp_path)
    fig = viz.draw_mask_targets(targets[:, 0], max_masks=3)
    assert sum(len(by_gid(ax.images, "target")) for ax in fig.axes) == 3
    check_png(fig, tmp_path, "b.png")
    fig = viz.draw_mask_targets(np.zeros((0, 28, 28)))
    check_png(fig, tmp_path, "c.png")


def loss_records():
    records = []
    for step in range(0, 100, 10):
        r = {
            "step": step,
            "loss": 3.0 / (1 + step),
            "loss_classifier": 1.0 / (1 + step),
            "loss_mask": 2.0 / (1 + step),
            "lr": 0.02 * min(1.0, (step + 1) / 50),
            "epoch": 0,
        }
        if step % 20 == 0:
            r["loss_eval"] = 0.5
        records.append(r)
    return records


def test_draw_loss_curves_from_jsonl(tmp_path):
    records = loss_records()
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    fig = viz.draw_loss_curves(log)
    loss_ax, lr_ax = fig.axes[:2]
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert set(lines) == {"loss", "loss_classifier", "loss_mask", "loss_eval"}
    for key in ("loss", "loss_classifier", "loss_mask"):
        np.testing.assert_allclose(lines[key].get_xdata(), [r["step"] for r in records])
        np.testing.assert_allclose(lines[key].get_ydata(), [r[key] for r in records])
    np.testing.assert_allclose(lines["loss_eval"].get_xdata(), [0, 20, 40, 60, 80])
    assert loss_ax.get_yscale() == "log"
    (lr_line,) = lr_ax.get_lines()
    assert lr_line.get_label() == "lr"
    np.testing.assert_allclose(lr_line.get_ydata(), [r["lr"] for r in records])
    check_png(fig, tmp_path)


def test_draw_loss_curves_from_list(tmp_path):
    records = [{"loss": v} for v in (1.0, 0.0, -0.5)]  # no step; not positive: linear
    fig = viz.draw_loss_curves(records)
    assert len(fig.axes) == 1
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(line.get_ydata(), [1.0, 0.0, -0.5])
    assert fig.axes[0].get_yscale() == "linear"
    check_png(fig, tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "loss": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        viz.draw_loss_curves(bad)


def test_save_figure_atomic(tmp_path):
    fig = viz.draw_anchors((20, 30), [[0, 0, 10, 10]])
    path = tmp_path / "sub" / "anchors.png"
    assert viz.save_figure(fig, path) == str(path)
    first = path.read_bytes()
    assert first.startswith(PNG_SIGNATURE)
    viz.save_figure(fig, path)  # replaces an existing file
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert os.listdir(tmp_path / "sub") == ["anchors.png"]  # no temp file left behind
    with Image.open(path) as im:
        assert im.size == (600, 400)  # 6 x 4 inches for a 20 x 30 image


def test_no_pyplot_figures_leak():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    viz.draw_loss_curves([{"step": 0, "loss": 1.0}])
    viz.draw_instances(np.zeros((3, 8, 8)), [[1, 1, 4, 4]])
    assert plt.get_fignums() == before
