"""Files in and out: the few rules every reader and writer of the project shares.

- ``atomic.py``: ``atomic_write``, the one way a file is written (checkpoints, COCO result
  and metric files, figures): a reader or a crash sees the old file or the whole new one;
- ``images.py``: ``load_rgb`` and ``IMAGE_ERRORS`` (reading an image file as RGB pixels,
  and what Pillow raises when it cannot), ``pixels_to_chw`` (those pixels as the model's
  float input);
- ``loss_log.py``: ``read_loss_log``, the training log's JSON-lines records;
- ``json_numbers.py``: ``is_real_number``, which values read from a JSON file count as
  numbers.

Nothing is imported here, so ``import minimask`` (which writes checkpoints through
``atomic.py``) does not load Pillow.
"""
