"""A seeded synthetic "shapes" dataset in COCO format: circles, squares and triangles.

This is the built-in dataset ``minimask demo`` trains on, so nothing has to be downloaded.
Each image is ``size x size`` RGB with a random background colour plus a little noise, and
1 to 4 flat-coloured shapes painted one after another, so later shapes can hide parts of
earlier ones.

How the masks are made exact
----------------------------
1. Every shape is a polygon: a circle is a 48-vertex regular polygon, a square is its 4
   corners (axis-aligned or rotated), a triangle is its 3 corners. Vertex coordinates are
   rounded to 2 decimals *before* anything else, so the numbers written to the JSON are
   exactly the numbers that were rasterized.
2. Each polygon is rasterized with pycocotools (``mask.frPyObjects`` + ``mask.decode``), the
   same code ``COCO.annToMask`` uses to read a polygon back.
3. Shapes are painted in order, so the *visible* part of shape ``i`` is its mask minus the
   masks of every later shape.
4. A shape whose visible area is below ``min_area`` pixels is removed (the one with the
   smallest visible area first) and the visible parts are recomputed, until every remaining
   shape is big enough. Removing a shape can only uncover pixels of the others, so this
   stops. Removed shapes are not painted at all, so no pixel belongs to an unannotated
   object. The last shape is always fully visible and is generated big enough, so every
   image keeps at least one annotation.
5. The image is painted from the same visible masks: background, then each shape's colour
   on its visible pixels. Pixels and annotations therefore agree exactly.

Polygon or RLE?
---------------
A fully visible shape is written as its polygon (``segmentation: [[x0, y0, x1, y1, ...]]``),
like ordinary COCO annotations. A partly hidden shape is written as compressed COCO RLE
(``segmentation: {"size": [h, w], "counts": "..."}``) with ``iscrowd: 0``, which pycocotools
reads like any other mask. Turning a pixel mask with holes and notches back into polygons
that re-rasterize to *exactly* the same pixels is fiddly and error-prone; RLE is exact by
construction. ``bbox`` (x, y, w, h) and ``area`` are computed from the visible mask.

Each annotation also carries an extra key, ``"shape"``, that pycocotools ignores: the kind,
the full (unoccluded) polygon, the RGB colour, and the paint order within the image. Tests
use it to recompute every visible mask independently.

The same seed gives byte-identical JSON and PNG files. Train and val use different random
streams (``default_rng([seed, 0])`` and ``default_rng([seed, 1])``), so changing ``n_train``
does not change the val split.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

CATEGORIES = [
    {"id": 1, "name": "circle", "supercategory": "shape"},
    {"id": 2, "name": "square", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
]
CIRCLE_VERTICES = 48
BACKGROUND_NOISE = 8  # background pixels vary by at most +-8 per channel
MIN_COLOR_DISTANCE = 40  # every shape colour differs from the background and the other
# shapes' colours by more than this in at least one channel (max-abs distance)


def polygon_to_mask(polygon: list[float], height: int, width: int) -> np.ndarray:
    """Rasterize one polygon ``[x0, y0, x1, y1, ...]`` to a ``(height, width)`` uint8 mask.

    Uses pycocotools, exactly as ``COCO.annToMask`` does for a polygon annotation.
    """
    rles = mask_utils.frPyObjects([polygon], height, width)
    return mask_utils.decode(mask_utils.merge(rles))


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO box ``[x, y, w, h]`` of the nonzero pixels: pixel ``(r, c)`` covers [c, c+1)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _shape_polygon(rng: np.random.Generator, kind: str, size: int) -> list[float]:
    """A random polygon of the given kind, inside the image, vertices rounded to 2 decimals."""
    radius = rng.uniform(0.08, 0.2) * size  # circumradius
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    if kind == "circle":
        angles = 2 * np.pi * np.arange(CIRCLE_VERTICES) / CIRCLE_VERTICES
    elif kind == "square":
        start = 0.0 if rng.random() < 0.5 else rng.uniform(0, np.pi / 2)  # half are rotated
        angles = start + np.pi / 4 + np.pi / 2 * np.arange(4)
    else:  # triangle: 3 corners on the circle, gaps between corners of at least 60 degrees
        gaps = rng.uniform(np.pi / 3, np.pi, size=2)
        while 2 * np.pi - gaps.sum() < np.pi / 3:
            gaps = rng.uniform(np.pi / 3, np.pi, size=2)
        angles = rng.uniform(0, 2 * np.pi) + np.array([0.0, gaps[0], gaps[0] + gaps[1]])
    xs = cx + radius * np.cos(angles)
    ys = cy + radius * np.sin(angles)
    xy = np.stack([xs, ys], axis=1).reshape(-1)
    return [round(float(v), 2) for v in np.clip(xy, 0.0, float(size))]


def _random_color(rng: np.random.Generator, avoid: list[np.ndarray]) -> np.ndarray:
    """A random RGB colour farther than MIN_COLOR_DISTANCE (max-abs) from each in ``avoid``."""
    while True:
        color = rng.integers(0, 256, size=3)
        if all(np.abs(color - other).max() > MIN_COLOR_DISTANCE for other in avoid):
            return color


def visible_masks(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Visible part of each mask when painted in list order (later ones cover earlier ones)."""
    covered = np.zeros_like(masks[0], dtype=bool) if masks else None
    out = []
    for m in reversed(masks):
        out.append(m.astype(bool) & ~covered)
        covered |= m.astype(bool)
    return out[::-1]


def _make_image(rng: np.random.Generator, size: int, min_area: int):
    """Return ``(pixels, shapes)``: a uint8 ``(size, size, 3)`` image and the kept shapes.

    Each kept shape is a dict with kind, category_id, polygon, color and visible mask.
    """
    background = rng.integers(BACKGROUND_NOISE, 256 - BACKGROUND_NOISE, size=3)
    shapes = []
    for _ in range(int(rng.integers(1, 5))):
        category = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
        while True:  # every shape is big enough to survive on its own
            polygon = _shape_polygon(rng, category["name"], size)
            mask = polygon_to_mask(polygon, size, size)
            if mask.sum() >= 2 * min_area:
                break
        color = _random_color(rng, [background] + [s["color"] for s in shapes])
        shapes.append(
            {
                "kind": category["name"],
                "category_id": category["id"],
                "polygon": polygon,
                "color": color,
                "mask": mask,
            }
        )
    # Drop the shape with the smallest visible area until all are at least min_area.
    while True:
        visible = visible_masks([s["mask"] for s in shapes])
        areas = [int(v.sum()) for v in visible]
        smallest = int(np.argmin(areas))
        if areas[smallest] >= min_area:
            break
        del shapes[smallest]
    noise = rng.integers(-BACKGROUND_NOISE, BACKGROUND_NOISE + 1, size=(size, size, 3))
    pixels = (background + noise).astype(np.uint8)
    for shape, vis in zip(shapes, visible):
        shape["visible"] = vis
        pixels[vis] = shape["color"]
    return pixels, shapes


def _annotation(shape: dict, order: int, ann_id: int, image_id: int, size: int) -> dict:
    vis = shape["visible"]
    if np.array_equal(vis, shape["mask"].astype(bool)):
        segmentation = [shape["polygon"]]  # fully visible: the polygon is exact
    else:
        rle = mask_utils.encode(np.asfortranarray(vis.astype(np.uint8)))
        segmentation = {"size": [size, size], "counts": rle["counts"].decode("ascii")}
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": shape["category_id"],
        "segmentation": segmentation,
        "area": float(vis.sum()),
        "bbox": mask_bbox(vis),
        "iscrowd": 0,
        "shape": {
            "kind": shape["kind"],
            "polygon": shape["polygon"],
            "color": [int(c) for c in shape["color"]],
            "order": order,
        },
    }


def make_split(
    out_dir: str, split: str, n_images: int, size: int, rng: np.random.Generator, min_area: int
) -> str:
    """Write ``out_dir/images/<split>/*.png`` and ``out_dir/annotations/instances_<split>.json``.

    Returns the annotation file's path.
    """
    image_dir = os.path.join(out_dir, "images", split)
    ann_dir = os.path.join(out_dir, "annotations")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, n_images + 1):
        pixels, shapes = _make_image(rng, size, min_area)
        file_name = f"{image_id:06d}.png"
        Image.fromarray(pixels, mode="RGB").save(os.path.join(image_dir, file_name))
        images.append({"id": image_id, "file_name": file_name, "height": size, "width": size})
        for order, shape in enumerate(shapes):
            ann_id = len(annotations) + 1
            annotations.append(_annotation(shape, order, ann_id, image_id, size))
    coco = {
        "info": {"description": f"minimask synthetic shapes, {split} split"},
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    ann_path = os.path.join(ann_dir, f"instances_{split}.json")
    with open(ann_path, "w") as f:
        json.dump(coco, f, indent=None, separators=(",", ":"))
    return ann_path


def make_shapes_dataset(
    out_dir: str,
    n_train: int = 200,
    n_val: int = 50,
    size: int = 128,
    seed: int = 0,
    min_area: int | None = None,
) -> dict:
    """Generate the shapes dataset under ``out_dir``; the same arguments give the same bytes.

    Writes ``out_dir/images/{train,val}/NNNNNN.png`` and
    ``out_dir/annotations/instances_{train,val}.json``. Shapes whose visible part is smaller
    than ``min_area`` pixels are dropped (see the module docstring); the default is
    ``size * size // 500`` (32 pixels for 128 x 128 images), and at most ``size * size // 200``
    is allowed so that shapes big enough can always be drawn. Returns a dict of paths:
    ``train_images``, ``val_images``, ``train_annotations``, ``val_annotations``.
    """
    if size < 32:
        raise ValueError(f"size must be at least 32, got {size}")
    if min_area is None:
        min_area = size * size // 500
    if not 1 <= min_area <= size * size // 200:
        raise ValueError(f"min_area must be in [1, {size * size // 200}], got {min_area}")
    if n_train < 0 or n_val < 0:
        raise ValueError(f"n_train and n_val must be >= 0, got {n_train} and {n_val}")
    paths = {}
    for index, (split, n) in enumerate([("train", n_train), ("val", n_val)]):
        rng = np.random.default_rng([seed, index])
        paths[f"{split}_annotations"] = make_split(out_dir, split, n, size, rng, min_area)
        paths[f"{split}_images"] = os.path.join(out_dir, "images", split)
    return paths
