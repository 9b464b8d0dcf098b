"""Benchmark: detection ops, minimask vs ONNX Runtime and PyTorch CPU.

    roi_align fwd       feature (1,256,64,64), 512 boxes, 7x7, sampling 2, aligned
                        vs ONNX Runtime RoiAlign (opset 16, half_pixel)
    roi_align fwd+bwd   the same, input gradient included
                        vs torch: grid_sample(align_corners=False) + avg_pool2d composite
    nms                 2000 boxes, IoU 0.7, vs ONNX Runtime NonMaxSuppression
    CUDA test suite     wall time of tests/test_cuda_*.py in numba's CUDA simulator (no
                        peer: printed so that the simulated suite is seen to stay small)

Everything runs in this one process on the same inputs, with the same thread count for
every library (Numba, torch.set_num_threads, ORT intra_op_num_threads). Before timing, each
pair's outputs are compared, so the table never times two different computations. Each
time is the median of ``--repeats`` runs after a warm-up (which also compiles minimask's
Numba kernels).

    python benchmarks/bench_ops.py [--repeats 20] [--threads 2]

Three thread pools share the cores here (Numba's OpenMP, torch's OpenMP, ORT's own); by
default each spins for a while after its parallel work, stealing the cores the next
library needs. So OMP_WAIT_POLICY=PASSIVE is set before torch and Numba are imported, and
ORT's intra-op spinning is turned off: each pool sleeps as soon as it is idle.

Prints a Markdown table: workload, minimask ms, peer ms, ratio (minimask / peer; below 1.0
means minimask is faster).
"""

import argparse
import os
import pathlib
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before numba and torch start OpenMP

import numba
import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from timing import median_ms

import minimask
from minimask.ops import nms, roi_align

FEATURE_SHAPE = (1, 256, 64, 64)
SPATIAL_SCALE = 0.25  # a stride-4 feature map (FPN P2) of a 256 x 256 image
N_ROIS, POOLED, SAMPLING = 512, 7, 2
N_NMS_BOXES, NMS_IOU = 2000, 0.7


def ort_session(node, inputs, output, threads):
    """An ORT session of the single ``node``; inputs and output as (name, onnx dtype)."""
    graph = helper.make_graph(
        [node],
        node.op_type,
        [helper.make_tensor_value_info(name, dtype, None) for name, dtype in inputs],
        [helper.make_tensor_value_info(*output, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def roi_inputs(rng):
    """Feature map and 512 boxes of 8 to 128 image pixels inside [2, 254]^2: there every
    sample point lies in [0, 63] feature cells, where zero-padded grid_sample and RoIAlign's
    border rule agree (the composite below is then exact)."""
    x = rng.standard_normal(FEATURE_SHAPE, dtype=np.float32)
    margin = 0.5 / SPATIAL_SCALE  # half a feature cell, in image pixels
    image_size = FEATURE_SHAPE[2] / SPATIAL_SCALE
    size = rng.uniform(8, 128, (N_ROIS, 2))
    low = rng.uniform(margin, image_size - margin - size)
    boxes = np.concatenate([low, low + size], axis=1).astype(np.float32)
    return x, boxes


def grid_sample_composite(x, boxes):
    """RoIAlign (aligned, fixed sampling) as torch ops: one grid of every box's sample
    points -> grid_sample(align_corners=False, zeros) -> 2x2 average pooling per bin
    (exact for boxes whose samples lie inside the map, see roi_inputs)."""
    height, width = x.shape[2:]
    start = boxes.astype(np.float64) * SPATIAL_SCALE - 0.5
    bins = (start[:, 2:] - start[:, :2]) / POOLED  # (K, 2): bin width, height
    steps = (np.arange(POOLED * SAMPLING) + 0.5) / SAMPLING  # sample positions in bins
    xs = start[:, 0:1] + steps * bins[:, 0:1]  # (K, PW*S)
    ys = start[:, 1:2] + steps * bins[:, 1:2]  # (K, PH*S)
    gx = np.broadcast_to(((2 * xs + 1) / width - 1)[:, None, :], (N_ROIS, len(steps), len(steps)))
    gy = np.broadcast_to(((2 * ys + 1) / height - 1)[:, :, None], gx.shape)
    grid = np.stack([gx, gy], axis=-1).reshape(1, N_ROIS * len(steps), len(steps), 2)
    grid = torch.tensor(grid, dtype=torch.float32)
    channels = x.shape[1]

    def run(xt):
        samples = torch.nn.functional.grid_sample(
            xt, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        samples = samples.view(channels, N_ROIS, len(steps), len(steps)).transpose(0, 1)
        return torch.nn.functional.avg_pool2d(samples, SAMPLING)

    return run


def bench_roi_align(rng, repeats, threads):
    x, boxes = roi_inputs(rng)
    rois = minimask.tensor(np.concatenate([np.zeros((N_ROIS, 1), np.float32), boxes], axis=1))
    kwargs = {"spatial_scale": SPATIAL_SCALE, "sampling_ratio": SAMPLING, "aligned": True}

    # forward vs ONNX Runtime
    node = helper.make_node(
        "RoiAlign",
        ["X", "rois", "batch_indices"],
        ["Y"],
        mode="avg",
        output_height=POOLED,
        output_width=POOLED,
        sampling_ratio=SAMPLING,
        spatial_scale=SPATIAL_SCALE,
        coordinate_transformation_mode="half_pixel",
    )
    inputs = [("X", TensorProto.FLOAT), ("rois", TensorProto.FLOAT)]
    session = ort_session(
        node, inputs + [("batch_indices", TensorProto.INT64)], ("Y", TensorProto.FLOAT), threads
    )
    feeds = {"X": x, "rois": boxes, "batch_indices": np.zeros(N_ROIS, np.int64)}
    x_mm = minimask.tensor(x)
    ours = roi_align(x_mm, rois, POOLED, **kwargs).numpy()
    np.testing.assert_allclose(ours, session.run(None, feeds)[0], rtol=0, atol=1e-4)
    yield (
        "roi_align fwd, (1,256,64,64), 512 boxes, 7x7, sampling 2, aligned",
        "ORT RoiAlign",
        median_ms(lambda: roi_align(x_mm, rois, POOLED, **kwargs), repeats),
        median_ms(lambda: session.run(None, feeds), repeats),
    )

    # forward + backward vs the grid_sample composite
    composite = grid_sample_composite(x, boxes)
    grad = rng.standard_normal(ours.shape, dtype=np.float32)
    np.testing.assert_allclose(ours, composite(torch.tensor(x)).numpy(), rtol=0, atol=1e-4)

    def minimask_step():
        xt = minimask.tensor(x, requires_grad=True)
        roi_align(xt, rois, POOLED, **kwargs).backward(minimask.tensor(grad))
        return xt.grad

    def torch_step():
        xt = torch.tensor(x, requires_grad=True)
        composite(xt).backward(torch.tensor(grad))
        return xt.grad

    np.testing.assert_allclose(minimask_step().numpy(), torch_step().numpy(), rtol=0, atol=1e-4)
    yield (
        "roi_align fwd+bwd, same",
        "torch grid_sample composite",
        median_ms(minimask_step, repeats),
        median_ms(torch_step, repeats),
    )


def bench_nms(rng, repeats, threads):
    low = rng.uniform(0, 512, (N_NMS_BOXES, 2))
    boxes = np.concatenate([low, low + rng.uniform(16, 128, (N_NMS_BOXES, 2))], 1)
    boxes = boxes.astype(np.float32)
    scores = rng.random(N_NMS_BOXES, dtype=np.float32)
    node = helper.make_node(
        "NonMaxSuppression",
        ["boxes", "scores", "max_output_boxes_per_class", "iou_threshold"],
        ["selected"],
        center_point_box=0,
    )
    inputs = [
        ("boxes", TensorProto.FLOAT),
        ("scores", TensorProto.FLOAT),
        ("max_output_boxes_per_class", TensorProto.INT64),
        ("iou_threshold", TensorProto.FLOAT),
    ]
    session = ort_session(node, inputs, ("selected", TensorProto.INT64), threads)
    feeds = {
        "boxes": boxes[None][:, :, [1, 0, 3, 2]],  # ORT wants (y1, x1, y2, x2)
        "scores": scores[None, None],
        "max_output_boxes_per_class": np.array([N_NMS_BOXES], np.int64),
        "iou_threshold": np.array([NMS_IOU], np.float32),
    }
    boxes_mm, scores_mm = minimask.tensor(boxes), minimask.tensor(scores)
    kept = nms(boxes_mm, scores_mm, NMS_IOU).numpy()
    np.testing.assert_array_equal(kept, session.run(None, feeds)[0][:, 2])
    yield (
        f"nms, {N_NMS_BOXES} boxes, IoU {NMS_IOU} ({len(kept)} kept)",
        "ORT NonMaxSuppression",
        median_ms(lambda: nms(boxes_mm, scores_mm, NMS_IOU), repeats),
        median_ms(lambda: session.run(None, feeds), repeats),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--skip-cuda-suite", action="store_true", help="do not time the simulated CUDA tests"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    rng = np.random.default_rng(0)
    print("| workload | minimask ms | peer | peer ms | ratio |")
    print("|---|---:|---|---:|---:|")
    for rows in (
        bench_roi_align(rng, args.repeats, args.threads),
        bench_nms(rng, args.repeats, args.threads),
    ):
        for name, peer, ours, theirs in rows:
            print(f"| {name} | {ours:.2f} | {peer} | {theirs:.2f} | {ours / theirs:.2f} |")
    if not args.skip_cuda_suite:
        seconds, summary = time_cuda_simulator_suite()
        print(f"| CUDA test suite in the simulator ({summary}) | {1e3 * seconds:.0f} | - | - | - |")


def time_cuda_simulator_suite():
    """Wall time of tests/test_cuda_*.py run serially in a fresh process with
    NUMBA_ENABLE_CUDASIM=1, and pytest's summary line (e.g. "207 passed")."""
    root = pathlib.Path(__file__).resolve().parent.parent
    tests = sorted(str(path) for path in (root / "tests").glob("test_cuda_*.py"))
    environment = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"the CUDA test suite failed:\n{result.stdout[-2000:]}")
    return seconds, result.stdout.strip().splitlines()[-1].strip("= ")


if __name__ == "__main__":
    main()
