"""What one training step costs, term by term: the inputs of docs/gpu_performance.md's model.

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/step_cost.py [--launch-us 20]
                                   [--gemm-tflops 3] [--bandwidth-tbs 2]

For two models, each on its batch of two images:

    case    tests/cuda_model_case.py's model (the smallest that runs every stage), whose
            step also runs on "cuda" here, in numba's simulator, to count its launches
    demo    the demo's model (engine/demo.py: the small preset at 192 pixels) on two
            shapes images, on the CPU

it runs one training step on the CPU (forward, the five losses, backward, SGD) with every
autograd Function watched (Function.apply) and counts:

    ops          forward Functions applied, and those recorded for the backward
    GEMM FLOPs   2 * (multiply-adds) of Conv2d, ConvTranspose2d and Matmul: forward, plus
                 each gradient the backward computes (input and weight, each the forward's
                 count)
    bytes        every forward op's inputs and output, counted once each; the backward
                 moves about as much again (it reads the saved inputs and the incoming
                 gradient and writes the input gradients), so bytes = 2 x forward's: an
                 estimate, a lower bound for ops that read an input several times
    launches     the case: counted (minimask.cuda.count(), the second step); the demo
                 model: its ops x the case's launches per op, an estimate (the CUDA
                 backend's launches per op depend on the op mix, which the two models share)

and the model's prediction for a GPU, each term with the rate given on the command line:
launches x launch cost, FLOPs / GEMM rate, bytes / memory bandwidth. The defaults and why
are in docs/gpu_performance.md. Prints a Markdown table.
"""

import argparse
import collections
import os
import pathlib
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import cuda_model_case  # noqa: E402
from training_step import sgd_step  # noqa: E402

import minimask  # noqa: E402
from minimask.autograd import function  # noqa: E402
from minimask.data.coco import CocoDetection  # noqa: E402
from minimask.data.shapes import make_shapes_dataset  # noqa: E402
from minimask.engine.batches import TrainingBatches  # noqa: E402
from minimask.engine.demo import demo_config  # noqa: E402
from minimask.engine.trainer import make_optimizer, to_device  # noqa: E402
from minimask.models import MaskRCNN  # noqa: E402

GEMM_OPS = {"Conv2d", "ConvTranspose2d", "Matmul"}


def gemm_flops(name, inputs, out):
    """2 x the multiply-adds of one forward GEMM op (0 for other ops)."""
    if name == "Conv2d":  # out (N, Cout, OH, OW), weight (Cout, Cin, kh, kw)
        weight = inputs[1].shape
        return 2 * out.size * weight[1] * weight[2] * weight[3]
    if name == "ConvTranspose2d":  # x (N, Cin, H, W), weight (Cin, Cout, kh, kw)
        weight = inputs[1].shape
        return 2 * inputs[0].size * weight[1] * weight[2] * weight[3]
    if name == "Matmul":  # out (..., M, N), a (..., M, K)
        return 2 * out.size * inputs[0].shape[-1]
    return 0


class Watch:
    """Counts of the Functions one block applies and runs backward (module docstring)."""

    def __init__(self):
        self.forward_ops = self.backward_ops = 0
        self.flops = self.forward_bytes = 0
        self.by_op = collections.Counter()

    def __enter__(self):
        self._apply = function.Function.__dict__["apply"]
        watch, original = self, self._apply.__func__

        def apply(cls, *inputs, **params):
            out = original(cls, *inputs, **params)
            watch.forward_ops += 1
            watch.backward_ops += out.grad_fn is not None  # a node the backward will run
            watch.by_op[cls.__name__] += 1
            arrays = [np.asarray(t.numpy()) for t in inputs]
            watch.forward_bytes += sum(a.nbytes for a in arrays) + out.numpy().nbytes
            flops = gemm_flops(cls.__name__, arrays, out.numpy())
            grads = sum(t.requires_grad for t in inputs[:2]) if cls.__name__ in GEMM_OPS else 0
            watch.flops += flops * (1 + grads)
            return out

        function.Function.apply = classmethod(apply)
        return self

    def __exit__(self, *exc):
        function.Function.apply = self._apply


def measure(cfg, images, targets, device="cpu"):
    """(Watch of the second step on the CPU, cuda launches of the second step or None)."""
    minimask.manual_seed(0)
    model = MaskRCNN(cfg).train()
    optimizer, _ = make_optimizer(model, cfg)
    sgd_step(model, optimizer, images, targets)  # compiles the kernels
    with Watch() as watch:
        sgd_step(model, optimizer, images, targets)
    launches = None
    if device == "cuda":
        minimask.manual_seed(0)
        model = MaskRCNN(cfg).to("cuda").train()
        optimizer, _ = make_optimizer(model, cfg)
        batch = [i.to("cuda") for i in images], [to_device(t, "cuda") for t in targets]
        sgd_step(model, optimizer, *batch)
        with minimask.cuda.count() as counted:
            sgd_step(model, optimizer, *batch)
        launches = counted.launches
    return watch, launches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch-us", type=float, default=20.0, help="host cost of a launch")
    parser.add_argument("--gemm-tflops", type=float, default=3.0, help="tiled matmul rate")
    parser.add_argument("--bandwidth-tbs", type=float, default=2.0, help="memory bandwidth")
    args = parser.parse_args(argv)
    if not minimask.cuda.is_available():
        sys.exit("no CUDA device: set NUMBA_ENABLE_CUDASIM=1 to count in numba's simulator")
    minimask.use_deterministic_algorithms(True)
    case_images, case_targets = cuda_model_case.batch(minimask.float32, "cpu")
    case = measure(cuda_model_case.config(), case_images, case_targets, device="cuda")
    with tempfile.TemporaryDirectory(prefix="minimask-step-cost-") as scratch:
        paths = make_shapes_dataset(os.path.join(scratch, "data"), 2, 0, seed=0)
        dataset = CocoDetection(paths["train_images"], paths["train_annotations"])
        images, targets = TrainingBatches(dataset, 2, 0, 0.0).examples(0)
        demo = measure(demo_config(len(dataset.category_ids)), images, targets)

    case_watch, case_launches = case
    per_op = case_launches / (case_watch.forward_ops + case_watch.backward_ops)
    print(
        f"GPU rates assumed: {args.launch_us:g} us a launch, {args.gemm_tflops:g} TFLOP/s "
        f"GEMM, {args.bandwidth_tbs:g} TB/s\n"
    )
    print(
        "| model | ops fwd / bwd | launches | GEMM GFLOP | GB moved "
        "| launch ms | GEMM ms | memory ms |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, (watch, launches) in (("case", case), ("demo", demo)):
        estimated = launches is None
        if estimated:
            launches = per_op * (watch.forward_ops + watch.backward_ops)
        gigabytes = 2 * watch.forward_bytes / 1e9
        print(
            f"| {name} | {watch.forward_ops:,} / {watch.backward_ops:,} "
            f"| {launches:,.0f}{' (est.)' if estimated else ''} | {watch.flops / 1e9:.2f} "
            f"| {gigabytes:.3f} | {launches * args.launch_us / 1e3:.1f} "
            f"| {watch.flops / (args.gemm_tflops * 1e12) * 1e3:.2f} "
            f"| {gigabytes / args.bandwidth_tbs:.2f} |"
        )
    print(f"\nlaunches per op (the case, counted): {per_op:.2f}")
    top = ", ".join(f"{op} {n}" for op, n in demo[0].by_op.most_common(8))
    print(f"demo model's most applied forward ops: {top}")


if __name__ == "__main__":
    main()
