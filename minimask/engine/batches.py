"""The training data stream: which images make batch ``step``, whether each is flipped,
and, in multi-scale training, the shortest side each is resized to.

A pure function of (seed, step), so a resumed run sees exactly the batches the
uninterrupted run would have seen, with no loader state to save:

    the stream is epoch 0's permutation, then epoch 1's, ...; epoch e's permutation is drawn
    from numpy.random.default_rng((seed, e)), and batch s is positions s*B .. s*B + B - 1
    flip of position p: default_rng((seed, 1_000_003, s)).random(B)[p - s*B] < prob
    size of position p: min_sizes[default_rng((seed, 1_000_033, s)).integers(len(min_sizes),
                        size=B)[p - s*B]], given to the model as target["min_size"]

The model's own draws about an image (the samplers' choice of anchors and RoIs) are keyed
the same way: each target carries ``"draw_key"`` = (seed, step, position) (models/sampler.py),
so a process of a data-parallel run that loads only some positions (``examples(step,
positions)``) draws for them what one process loading the whole batch draws.

Each draw has its own generator, so the sizes change neither the order nor the flips, and
with no ``min_sizes`` (single-scale training) nothing is drawn and no target gets a
``"min_size"``:
the stream is the one it was before multi-scale training existed. The model's transform
resizes an image whose target has ``min_size`` to that shortest side instead of the
config's (models/transform.py); the config's ``max_size`` still caps it.

An example the dataset cannot load (it returns None and warns, see data/coco.py) is left out
of its batch, so a broken image costs one example, never the run; a batch whose examples all
fail is reported as empty and the step is skipped by the trainer.
"""

import numpy as np

from minimask.data.transforms import horizontal_flip

_FLIP_STREAM = 1_000_003  # separates the flip draws from the permutation draws
_SIZE_STREAM = 1_000_033  # and the size draws from both


class TrainingBatches:
    """``batches[step]`` -> (images, targets) lists for ``dataset`` (CocoDetection-like:
    ``len`` and ``ds[i] -> (image, target) | None``); ``min_sizes``: the shortest sides of
    multi-scale training (config ``min_size_train``), empty for single-scale training."""

    def __init__(self, dataset, batch_size, seed, flip_prob=0.5, min_sizes=()):
        if len(dataset) == 0:
            raise ValueError("the training dataset has no images")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.flip_prob = float(flip_prob)
        self.min_sizes = tuple(int(size) for size in min_sizes)
        self._permutations = {}

    def indices(self, step):
        """Dataset indices of batch ``step``."""
        n = len(self.dataset)
        positions = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        out = []
        for position in positions:
            epoch, offset = divmod(int(position), n)
            if epoch not in self._permutations:
                self._permutations = {
                    epoch: np.random.default_rng((self.seed, epoch)).permutation(n)
                }
            out.append(int(self._permutations[epoch][offset]))
        return out

    def sizes(self, step):
        """The shortest side of each position of batch ``step`` (multi-scale training), or
        None for every position without ``min_sizes``."""
        if not self.min_sizes:
            return [None] * self.batch_size
        rng = np.random.default_rng((self.seed, _SIZE_STREAM, step))
        return [self.min_sizes[k] for k in rng.integers(len(self.min_sizes), size=self.batch_size)]

    def __getitem__(self, step):
        return self.examples(step)

    def examples(self, step, positions=None):
        """(images, targets) of batch ``step`` at ``positions`` of the batch (all of them
        by default; a data-parallel process loads its share only). Each target gets
        ``"draw_key"`` = (seed, step, position), which keys the model's random draws about
        that image (models/sampler.py)."""
        flips = np.random.default_rng((self.seed, _FLIP_STREAM, step)).random(self.batch_size)
        indices, sizes = self.indices(step), self.sizes(step)
        positions = range(self.batch_size) if positions is None else positions
        images, targets = [], []
        for position in positions:
            index, flip, size = indices[position], flips[position], sizes[position]
            example = self.dataset[index]
            if example is None:
                continue
            image, target = example
            if flip < self.flip_prob:
                image, target = horizontal_flip(image, target)
            target = {**target, "draw_key": (self.seed, step, position)}
            if size is not None:
                target["min_size"] = size
            images.append(image)
            targets.append(target)
        return images, targets
