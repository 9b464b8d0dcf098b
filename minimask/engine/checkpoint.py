"""Checkpoints: everything needed to use a trained model or to resume its training, in one
``.npz`` file written atomically (minimask.save: a temporary file, then a rename).

Keys:
    model.<name>       the model's state_dict
    optimizer.<key>    the optimizer's flat state_dict (momentum buffers, options)
    scheduler.<key>    the learning-rate scheduler's state (its iteration counter)
    meta               UTF-8 JSON, stored as uint8: {"config": MaskRCNNConfig.to_dict(),
                       "step": steps done, "category_ids": COCO id of label k at k - 1,
                       "class_names": [background, name of label 1, ...],
                       "generator": the bit-generator state of minimask's global random
                       generator (the samplers draw from it), ...}
A resumed run restores all of it, and the data order is a function of (seed, step)
(batches.py), so it continues exactly where the saved run was.

``meta["format"]`` is the layout's version, ``CHECKPOINT_FORMAT``; a file of a newer
layout is refused with a message rather than misread (a file without the field is the
first layout, which this one is). ``minimask.load`` checks every entry's CRC-32, so a
truncated or damaged file is refused too; each error names the file.
"""

import json

import numpy as np

from minimask.autograd import random
from minimask.models.config import MaskRCNNConfig
from minimask.models.mask_rcnn import MaskRCNN
from minimask.serialization import load, save

CHECKPOINT_FORMAT = 1


def save_checkpoint(path, model, step, meta, optimizer=None, scheduler=None):
    """Write the checkpoint of ``model`` after ``step`` steps; ``meta`` adds JSON-able
    entries (category ids, class names, ...)."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        state.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    if scheduler is not None:
        state.update({f"scheduler.{k}": v for k, v in scheduler.state_dict().items()})
    info = dict(meta)
    info.update(
        format=CHECKPOINT_FORMAT,
        config=model.cfg.to_dict(),
        step=int(step),
        generator=random.default_generator().bit_generator.state,
    )
    state["meta"] = np.frombuffer(json.dumps(info).encode("utf-8"), dtype=np.uint8)
    save(state, path)


def read_checkpoint(path):
    """(meta dict, {"model": .., "optimizer": .., "scheduler": ..} state dicts)."""
    state = load(path)
    if "meta" not in state:
        raise ValueError(f"{path}: not a minimask checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(bytes(state.pop("meta").numpy()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path}: not a minimask checkpoint (its meta is not JSON: {error})"
        ) from None
    version = meta.get("format", 1)
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: checkpoint format {version!r} is newer than this minimask reads "
            f"(format {CHECKPOINT_FORMAT}); upgrade minimask to load it"
        )
    if not isinstance(meta.get("config"), dict) or "step" not in meta:
        raise ValueError(f"{path}: not a minimask checkpoint (its meta has no config or step)")
    parts = {"model": {}, "optimizer": {}, "scheduler": {}}
    for key, value in state.items():
        kind, _, name = key.partition(".")
        if kind not in parts:
            raise ValueError(f"{path}: unexpected checkpoint entry {key!r}")
        parts[kind][name] = value
    return meta, parts


def load_model(path, device="cpu"):
    """(model in eval mode on ``device``, meta) from a checkpoint file."""
    meta, parts = read_checkpoint(path)
    try:
        model = MaskRCNN(MaskRCNNConfig.from_dict(meta["config"]))
        model.load_state_dict(parts["model"])
    except (TypeError, ValueError, KeyError, RuntimeError) as error:
        raise ValueError(f"{path}: the checkpoint does not match its own config: {error}") from None
    return model.to(device).eval(), meta


def restore_generator(meta):
    """Put minimask's global generator back in the saved state."""
    random.default_generator().bit_generator.state = meta["generator"]
