"""Pick a fixed-size, class-balanced set of training examples from the matched labels.

torchvision.models.detection._utils.BalancedPositiveNegativeSampler semantics, for one
image, on NumPy arrays. Labels: >= 1 positive, 0 negative (background), -1 ignored (e.g.
between thresholds). Without it the thousands of easy background anchors would swamp the loss:

    num_pos = min(#positives, int(batch_size_per_image * positive_fraction))
    num_neg = min(#negatives, batch_size_per_image - num_pos)

and each set is drawn uniformly at random (a permutation, then the first num_*).

Whose random numbers: ``image_generator(target, stream)``. In training the batch stream
(engine/batches.py) gives each target a ``"draw_key"``, (seed, step, the image's position
in the global batch), and every draw that concerns that image comes from a generator of
its own, ``numpy.random.default_rng((*draw_key, stream))``. The draws then depend on the
image and the step only, not on which process of a data-parallel run handles it or on
what the other images drew. A target without the key (a direct ``model(images,
targets)`` call) draws from minimask's global generator, so ``minimask.manual_seed``
makes it reproducible.
"""

import numpy as np

from minimask.autograd import random

RPN_STREAM = 1  # the RPN's anchor sampling
ROI_STREAM = 2  # the RoI heads' proposal sampling


def image_generator(target, stream):
    """The NumPy generator of one image's draws in ``stream`` (module docstring)."""
    key = target.get("draw_key")
    if key is None:
        return random.default_generator()
    return np.random.default_rng((*key, stream))


class BalancedPositiveNegativeSampler:
    def __init__(self, batch_size_per_image, positive_fraction):
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(self, labels, generator=None):
        """labels: integer NumPy array (P,) -> (positive indices, negative indices), two
        int64 arrays into ``labels``. Unlike torchvision (a list of images, 0/1 masks back),
        this takes one image and returns indices; call it once per image. ``generator``:
        the NumPy generator to draw from (``image_generator``), minimask's global one by
        default."""
        if not isinstance(labels, np.ndarray):
            raise TypeError(
                f"sampler: labels must be a NumPy array (P,), got {type(labels).__name__}; "
                "pass labels.numpy() for a Tensor"
            )
        if labels.ndim != 1:
            raise ValueError(f"sampler: labels must be 1-D (P,), got {labels.shape}")
        host = labels
        positive = np.flatnonzero(host >= 1)
        negative = np.flatnonzero(host == 0)
        num_pos = min(positive.size, int(self.batch_size_per_image * self.positive_fraction))
        num_neg = min(negative.size, self.batch_size_per_image - num_pos)
        generator = random.default_generator() if generator is None else generator
        pos_idx = positive[generator.permutation(positive.size)[:num_pos]].astype(np.int64)
        neg_idx = negative[generator.permutation(negative.size)[:num_neg]].astype(np.int64)
        return pos_idx, neg_idx
