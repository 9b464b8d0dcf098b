"""Benchmark: one training step of the ``small`` Mask R-CNN, minimask vs PyTorch CPU.

    workload   MaskRCNNConfig.small(3).scaled_to(256), 2 images of 256 x 256 (3 objects and
               1 object), float32, SGD(momentum 0.9, weight decay 1e-4)
    minimask   model(images, targets) -> five losses -> backward -> optimizer.step(): the
               whole step, target assignment included (anchor matching and sampling, RPN
               proposals with NMS, RoI sampling, mask targets)
    PyTorch    the test suite's mirror of the same model (tests/torch_mirror.py, same
               weights): the network's forward from the batch to the five losses, backward,
               SGD step, for the target assignment minimask made (computed once, outside
               the timing: PyTorch is not charged for it). Its RoIAlign is written in torch
               ops (torchvision's compiled ops do not load here), so its pooling is slower
               than a compiled kernel would be.

Before timing, the two sides' losses are compared on the same weights and assignment, so
the table never times two different computations. Each time is the median of
``--repeats`` steps after a warm-up (minimask's Numba kernels compile in the warm-up).

    python benchmarks/bench_train.py [--repeats 10] [--threads 2]

Prints a Markdown table: workload, minimask ms, torch ms, ratio (below 1.0: minimask faster).
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before numba and torch start OpenMP

import numba
import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import median_ms  # noqa: E402
from torch_mirror import (  # noqa: E402
    TorchMaskRCNN,
    copy_weights,
    minimask_training_steps,
    synthetic_example,
)

import minimask  # noqa: E402
from minimask.models import MaskRCNN, MaskRCNNConfig  # noqa: E402
from minimask.optim import SGD  # noqa: E402

SIZE = 256
SCENES = [
    (0, [[20, 30, 90, 100], [120, 40, 200, 150], [60, 160, 140, 240]], [1, 2, 3]),
    (1, [[70, 60, 190, 200]], [2]),
]


def batch():
    images, targets = [], []
    for seed, boxes, labels in SCENES:
        image, target = synthetic_example(seed, SIZE, SIZE, boxes, labels)
        images.append(image.to(minimask.float32))
        targets.append(target)
    return images, targets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)

    cfg = MaskRCNNConfig.small(3).scaled_to(SIZE)
    minimask.manual_seed(0)
    model = MaskRCNN(cfg)
    mirror = TorchMaskRCNN(cfg)
    copy_weights(model, mirror)
    images, targets = batch()

    # Same weights, same assignment: the losses must agree before anything is timed.
    losses, assignment, internals = minimask_training_steps(model, images, targets, seed=0)
    torch_batch = torch.from_numpy(internals["batch"].numpy())
    theirs = mirror.losses(torch_batch, assignment)
    for name, value in losses.items():
        np.testing.assert_allclose(theirs[name].item(), value.item(), rtol=1e-4, atol=1e-6)

    ours_opt = SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    theirs_opt = torch.optim.SGD(mirror.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)

    def minimask_step():
        step_losses = model(images, targets)
        sum(step_losses.values()).backward()
        ours_opt.step()
        ours_opt.zero_grad()

    def torch_step():
        step_losses = mirror.losses(torch_batch, assignment)
        sum(step_losses.values()).backward()
        theirs_opt.step()
        theirs_opt.zero_grad()

    ours_ms = median_ms(minimask_step, args.repeats)
    theirs_ms = median_ms(torch_step, args.repeats)
    print(f"threads: {args.threads}, repeats: {args.repeats}, float32\n")
    print("| workload | minimask ms | torch ms | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| training step, small model, 2 x {SIZE}x{SIZE} | {ours_ms:.0f} | {theirs_ms:.0f} | "
        f"{ours_ms / theirs_ms:.2f} |"
    )


if __name__ == "__main__":
    main()
