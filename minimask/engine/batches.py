"""The training data stream: which images make batch ``step``, and whether each is flipped.

A pure function of (seed, step), so a resumed run sees exactly the batches the
uninterrupted run would have seen, with no loader state to save:

    the stream is epoch 0's permutation, then epoch 1's, ...; epoch e's permutation is drawn
    from numpy.random.default_rng((seed, e)), and batch s is positions s*B .. s*B + B - 1
    flip of position p: default_rng((seed, 1_000_003, s)).random(B)[p - s*B] < prob

An example the dataset cannot load (it returns None and warns, see data/coco.py) is left out
of its batch, so a broken image costs one example, never the run; a batch whose examples all
fail is reported as empty and the step is skipped by the trainer.
"""

import numpy as np

from minimask.data.transforms import horizontal_flip

_FLIP_STREAM = 1_000_003  # separates the flip draws from the permutation draws


class TrainingBatches:
    """``batches[step]`` -> (images, targets) lists for ``dataset`` (CocoDetection-like:
    ``len`` and ``ds[i] -> (image, target) | None``)."""

    def __init__(self, dataset, batch_size, seed, flip_prob=0.5):
        if len(dataset) == 0:
            raise ValueError("the training dataset has no images")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.flip_prob = float(flip_prob)
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

    def __getitem__(self, step):
        flips = np.random.default_rng((self.seed, _FLIP_STREAM, step)).random(self.batch_size)
        images, targets = [], []
        for index, flip in zip(self.indices(step), flips):
            example = self.dataset[index]
            if example is None:
                continue
            image, target = example
            if flip < self.flip_prob:
                image, target = horizontal_flip(image, target)
            images.append(image)
            targets.append(target)
        return images, targets
