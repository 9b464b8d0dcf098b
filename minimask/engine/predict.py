"""Predictions drawn on images: the model's masks, boxes, class names and scores as PNGs."""

import os

from minimask.autograd.factories import tensor
from minimask.io.images import IMAGE_ERRORS, load_rgb, pixels_to_chw
from minimask.viz import draw_instances, save_figure

DRAW_SCORE_THRESHOLD = 0.5  # detections below this are not drawn (all are evaluated)


def predict_image(model, image, device="cpu"):
    """The model's detections for one [3, H, W] float image in [0, 1] (on the host)."""
    model.eval()
    prediction = model([image.to(device)])[0]
    return {k: v.to("cpu") for k, v in prediction.items()}


def draw_prediction(
    image, prediction, class_names, score_threshold=DRAW_SCORE_THRESHOLD, ax=None, title=None
):
    """draw_instances of the prediction; returns the figure."""
    return draw_instances(
        image,
        boxes=prediction["boxes"],
        labels=prediction["labels"],
        scores=prediction["scores"],
        masks=prediction["masks"],
        class_names=class_names,
        score_threshold=score_threshold,
        ax=ax,
        title=title,
    )


def predict_files(
    model, paths, out_dir, class_names, device="cpu", score_threshold=DRAW_SCORE_THRESHOLD
):
    """Write OUT/<name>.png for each image file; returns the written paths. An image that
    cannot be read is reported (ValueError naming the file) before any work is done."""
    images = []
    for path in paths:
        try:
            pixels = load_rgb(path)
        except IMAGE_ERRORS as error:
            raise ValueError(f"cannot read image {path}: {error}") from None
        images.append(pixels_to_chw(pixels))
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for path, pixels in zip(paths, images):
        image = tensor(pixels)
        prediction = predict_image(model, image, device)
        kept = int((prediction["scores"].numpy() >= score_threshold).sum())
        title = f"{os.path.basename(path)}: {kept} detections with score >= {score_threshold}"
        figure = draw_prediction(image, prediction, class_names, score_threshold, title=title)
        stem = os.path.splitext(os.path.basename(path))[0]
        written.append(save_figure(figure, os.path.join(out_dir, f"{stem}.png")))
    return written
