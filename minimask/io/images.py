"""Reading an image file into the model's input: RGB pixels, then a float [3, H, W] array.

The dataset (``minimask.data.coco``) and ``minimask predict`` read images the same way,
through these functions, so a picture the model is evaluated on and one it is asked to
predict on become the same numbers:

- ``load_rgb``: the stored pixels as uint8 ``[H, W, 3]`` RGB. Pillow converts every mode to
  RGB (grayscale copied to three channels, alpha dropped, a palette looked up, through RGBA
  when it has a transparent colour, CMYK by Pillow's formula). 16-bit grayscale (Pillow's
  ``I;16`` modes, a 16-bit PNG) keeps each value's high byte, ``v >> 8``: Pillow reads a
  16-bit RGB PNG that way, while its own conversion of ``I;16`` to RGB clips every value
  above 255 to white. 32-bit integer or float pixels (modes ``I`` and ``F``) have no
  standard range to scale and are refused (ValueError). EXIF orientation is not applied:
  COCO's annotations are made on the stored pixels.
- ``IMAGE_ERRORS``: what Pillow raises on a missing, truncated, corrupt or oversized file
  (over Pillow's decompression-bomb limit, refused before decoding), and ``load_rgb``'s
  ValueError for a mode it refuses; each caller catches these and reports the file in its
  own way.
- ``pixels_to_chw``: uint8 ``[H, W, 3]`` -> float32 ``[3, H, W]`` in ``[0, 1]``.
"""

import numpy as np
from PIL import Image

# Errors Pillow raises on a missing, truncated or corrupt file, and on an image so large
# that decoding it could be a decompression bomb.
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def load_rgb(path: str) -> np.ndarray:
    """The image at ``path`` as a uint8 ``[H, W, 3]`` RGB array (raises IMAGE_ERRORS)."""
    with Image.open(path) as img:
        img.load()  # decode now, inside the caller's ``try``, not lazily later
        if img.mode.startswith("I;16"):
            high = (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
            return np.repeat(high[:, :, None], 3, axis=2)
        if img.mode in ("I", "F"):
            raise ValueError(
                f"{img.mode!r} pixels (32-bit integer or float) have no standard 8-bit scale"
            )
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # Pillow's advice for palette images with transparency
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def pixels_to_chw(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` pixels as the model's input: a contiguous float32 ``[3, H, W]``
    array in ``[0, 1]`` (each value divided by 255)."""
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / 255.0
