"""The demo's trained model, kept in a cache folder for whoever needs a detector that works:
``demo_model()``.

Pictures of proposals, detections and failures say little when they come from a model
that does not work. The demo's recipe (engine/demo.py) trains one that does, so the
``minimask demo`` command leaves a copy of its checkpoint in the cache, with the recipe and
the AP it measured, and ``demo_model()`` loads it from there (``run_demo`` itself, called
from Python, writes only into the folder it is given). When the cache has
no checkpoint of that recipe, ``demo_model()`` runs the demo first, into the cache, after
saying so: that takes as long as ``minimask demo`` (README, "Results", has its time).

    cache folder   $MINIMASK_CACHE, else $XDG_CACHE_HOME/minimask, else ~/.cache/minimask
    one recipe     CACHE/demo-<steps>-steps-<images>-images-seed-<seed>/
                   checkpoint.npz   the trained weights and config (engine/checkpoint.py)
                   recipe.json      steps, images, seed, the AP figures, minutes

A shortened run (fewer steps or images) is kept under its own name, so it never stands in
for the full recipe. ``SHORT_RECIPE`` is the one the lessons ask for when
``MINIMASK_LESSONS_FAST=1`` (the lesson tests): enough to run their code, not to learn.
The checkpoint is copied in atomically (``minimask.io.atomic``: a temporary file, then a
rename), so an interrupted copy leaves no half file that would later load as the model.
"""

import json
import os
import shutil
import tempfile

from minimask.engine.checkpoint import load_model
from minimask.engine.demo import DEMO_ITERS, DEMO_TRAIN_IMAGES, DEMO_VAL_IMAGES, run_demo
from minimask.io.atomic import atomic_write

SHORT_RECIPE = {"iters": 10, "n_train": 10}  # demo_model(**SHORT_RECIPE): a few seconds
CHECKPOINT_NAME = "checkpoint.npz"
RECIPE_NAME = "recipe.json"


def cache_dir():
    """The cache folder (module docstring); not created here."""
    if os.environ.get("MINIMASK_CACHE"):
        return os.environ["MINIMASK_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "minimask")


def recipe_dir(iters=DEMO_ITERS, n_train=DEMO_TRAIN_IMAGES, seed=0):
    """The cache's folder for one recipe."""
    return os.path.join(cache_dir(), f"demo-{iters}-steps-{n_train}-images-seed-{seed}")


def keep_in_cache(summary, iters, n_train, seed):
    """Copy a finished demo's checkpoint (``run_demo``'s summary) into the cache with its
    recipe; returns the cached checkpoint's path."""
    folder = recipe_dir(iters, n_train, seed)
    recipe = {
        "steps": iters,
        "train_images": n_train,
        "seed": seed,
        "minutes": summary["minutes"],
        **{k: summary[k] for k in ("segm_AP", "segm_AP50", "bbox_AP", "bbox_AP50")},
    }
    with open(summary["checkpoint"], "rb") as source:
        with atomic_write(os.path.join(folder, CHECKPOINT_NAME)) as copy:
            shutil.copyfileobj(source, copy)
    with atomic_write(os.path.join(folder, RECIPE_NAME), "w", encoding="utf-8") as f:
        json.dump(recipe, f, indent=1)
    return os.path.join(folder, CHECKPOINT_NAME)


def demo_model(device="cpu", iters=DEMO_ITERS, n_train=DEMO_TRAIN_IMAGES, seed=0, progress=True):
    """(model in eval mode, checkpoint meta, recipe dict) of the demo's recipe, trained
    first into the cache if it is not there (module docstring)."""
    folder = recipe_dir(iters, n_train, seed)
    checkpoint = os.path.join(folder, CHECKPOINT_NAME)
    if not os.path.isfile(checkpoint):
        print(
            f"No trained demo model in {folder}: training it now ({iters} steps on {n_train} "
            "shapes images, as long as `minimask demo` takes; README's Results give its "
            "time). It is kept there for next time."
        )
        os.makedirs(folder, exist_ok=True)
        work = tempfile.mkdtemp(dir=folder, prefix="work-")  # two processes may train at once
        summary = run_demo(
            work, iters, n_train, min(DEMO_VAL_IMAGES, n_train), seed, device, progress
        )
        keep_in_cache(summary, iters, n_train, seed)
        shutil.rmtree(work, ignore_errors=True)
    model, meta = load_model(checkpoint, device)
    with open(os.path.join(folder, RECIPE_NAME), encoding="utf-8") as f:
        recipe = json.load(f)
    return model.eval(), meta, recipe
