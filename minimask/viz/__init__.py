"""Pictures of what Mask R-CNN does, one figure per step of the pipeline.

Every function takes minimask Tensors or NumPy arrays, draws with plain matplotlib artists
(``Rectangle`` patches, ``imshow`` images, ``scatter`` collections, ``text``) and returns a
``matplotlib.figure.Figure``. Figures are made with ``Figure()`` directly, never through
``pyplot``, so nothing is registered in pyplot's global list of open figures (a loop that
draws a thousand figures does not leak them) and no window is ever opened: the code works
with the Agg backend, in a notebook (display the returned figure) or on a headless server
(``save_figure(fig, "out.png")``).

Artists carry a ``gid`` naming what they show ("box", "mask", "label", "anchor", "samples",
...), so a notebook or a test can find the drawn data again, e.g.
``[p for p in ax.patches if p.get_gid() == "box"]``.

Coordinates. Boxes are (x1, y1, x2, y2) in image pixels, width x2 - x1 (the project's
convention): pixel (row i, column j) covers [j, j + 1] x [i, i + 1], so an image is drawn
with ``extent=(0, W, H, 0)`` and a box's Rectangle has exactly the box's corners. The
exception is `draw_roi_align_grid`, which draws a feature map in RoIAlign's own coordinates
(cell (i, j) centred at (x=j, y=i), matplotlib's default extent), see there.

The modules, in the pipeline's order:

- ``instances.py``: ``draw_instances``, detections or ground truth on an image;
- ``anchors.py``: ``draw_anchors``, ``draw_anchors_at``, ``draw_matched_anchors``;
- ``proposals.py``: ``draw_proposals`` (before / after NMS), ``draw_sampled_rois``;
- ``roi_align.py``: ``draw_roi_align_grid``, ``roi_align_sample_points``,
  ``bilinear_neighbours`` (the kernels' geometry from ``minimask.geometry``, drawn);
- ``masks.py``: ``draw_mask_targets``;
- ``curves.py``: ``draw_loss_curves`` (``read_loss_log``, from ``minimask.io.loss_log``, is
  re-exported here);
- shared by them: ``style.py`` (``PALETTE``, ``instance_color``), ``inputs.py`` (Tensors,
  boxes and images as NumPy), ``figures.py`` (figures without pyplot, ``save_figure``).
"""

from minimask.io.loss_log import read_loss_log
from minimask.viz.anchors import draw_anchors, draw_anchors_at, draw_matched_anchors
from minimask.viz.curves import draw_loss_curves
from minimask.viz.figures import save_figure
from minimask.viz.instances import draw_instances
from minimask.viz.masks import draw_mask_targets
from minimask.viz.proposals import draw_proposals, draw_sampled_rois
from minimask.viz.roi_align import (
    bilinear_neighbours,
    draw_roi_align_grid,
    roi_align_sample_points,
)
from minimask.viz.style import PALETTE, instance_color

__all__ = [
    "PALETTE",
    "instance_color",
    "draw_instances",
    "draw_anchors",
    "draw_anchors_at",
    "draw_matched_anchors",
    "draw_proposals",
    "draw_sampled_rois",
    "roi_align_sample_points",
    "bilinear_neighbours",
    "draw_roi_align_grid",
    "draw_mask_targets",
    "read_loss_log",
    "draw_loss_curves",
    "save_figure",
]
