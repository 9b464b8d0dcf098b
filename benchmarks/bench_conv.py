"""Benchmark: conv2d and conv_transpose2d forward + backward, minimask vs PyTorch CPU.

Both run in this one process on the same inputs, with the same thread count, after a
warm-up (which also compiles minimask's Numba kernels). Each time is the median of
``--repeats`` runs of forward + backward (input, weight and bias gradients).

    python benchmarks/bench_conv.py [--repeats 20] [--threads 2]

Prints a Markdown table: workload, minimask ms, torch ms, ratio (minimask / torch;
below 1.0 means minimask is faster).
"""

import argparse

import numpy as np
import torch
from timing import median_ms

import minimask
import minimask.nn.functional as F

WORKLOADS = [
    # name, minimask function, torch function, x shape, w shape, keyword arguments
    (
        "conv2d fwd+bwd, x (2,64,64,64), w (64,64,3,3), pad 1",
        F.conv2d,
        torch.nn.functional.conv2d,
        (2, 64, 64, 64),
        (64, 64, 3, 3),
        {"padding": 1},
    ),
    (
        "conv_transpose2d fwd+bwd, x (64,64,14,14), w (64,64,2,2), stride 2",
        F.conv_transpose2d,
        torch.nn.functional.conv_transpose2d,
        (64, 64, 14, 14),
        (64, 64, 2, 2),
        {"stride": 2},
    ),
]


def minimask_step(fn, x, w, b, kwargs):
    def step():
        xt = minimask.tensor(x, requires_grad=True)
        wt = minimask.tensor(w, requires_grad=True)
        bt = minimask.tensor(b, requires_grad=True)
        y = fn(xt, wt, bt, **kwargs)
        y.backward(minimask.ones_like(y))

    return step


def torch_step(fn, x, w, b, kwargs):
    def step():
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        y = fn(xt, wt, bt, **kwargs)
        y.backward(torch.ones_like(y))

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print("| workload | minimask ms | torch ms | ratio |")
    print("|---|---:|---:|---:|")
    for name, fn, torch_fn, x_shape, w_shape, kwargs in WORKLOADS:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32)
        out_channels = w_shape[0] if fn is F.conv2d else w_shape[1]
        b = rng.standard_normal(out_channels, dtype=np.float32)
        ours = median_ms(minimask_step(fn, x, w, b, kwargs), args.repeats)
        theirs = median_ms(torch_step(torch_fn, x, w, b, kwargs), args.repeats)
        print(f"| {name} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
