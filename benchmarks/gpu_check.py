"""One command for a machine with an NVIDIA GPU: does minimask work there, and how fast?

    pip install -e ".[dev,gpu]"
    python benchmarks/gpu_check.py [--out gpu_check.md] [--steps 300] [--repeats 10]

It runs, in one process except for the tests, and writes one Markdown table (``--out``, also
printed):

    device         name, compute capability, memory, numba-cuda's version
    CUDA tests     tests/test_cuda_*.py on the device (numba's simulator off): passed,
                   failed, skipped, minutes
    ops            bench_ops.py's workloads (RoIAlign forward, forward + backward, NMS) on
                   "cuda" and on "cpu", the same inputs; the outputs are compared first
                   (float32 tolerance), then each is the median of --repeats runs after a
                   warm-up, the GPU waited for before the clock stops
    training step  one step of the demo's model (the small preset at 192 pixels,
                   engine/demo.py) on two shapes images: forward, the five losses to the
                   host, backward, SGD; "cuda" against "cpu" (their first losses compared
                   first, float32 tolerance), and what the cuda step asks of the GPU
                   (minimask.cuda.count(): launches, allocations, copies, waits); with
                   --repeats 0, the first step's time and counts (the toy's choice: each
                   simulated step takes minutes)
    demo training  the demo recipe trained --steps steps on "cuda" (minimask.engine.train):
                   seconds a step after the first two, the first and last loss, the counters
                   per step and the caching allocator's memory_stats()

With no GPU it stops and says so. ``--toy`` runs every stage at the smallest sizes in
numba's simulator (set NUMBA_ENABLE_CUDASIM=1), which is how tests/test_gpu_check.py checks
this script on a machine without a GPU; a toy table's times are the simulator's and say
nothing about a GPU. The exit status is 1 when a CUDA test fails or cuda and cpu disagree.
"""

import argparse
import dataclasses
import glob
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before numba starts OpenMP

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from timing import median_ms  # noqa: E402
from training_step import sgd_step  # noqa: E402

import minimask  # noqa: E402
from minimask.data.coco import CocoDetection  # noqa: E402
from minimask.data.shapes import make_shapes_dataset  # noqa: E402
from minimask.engine.batches import TrainingBatches  # noqa: E402
from minimask.engine.demo import DEMO_IMAGE_SIZE, DEMO_TRAIN_IMAGES, demo_config  # noqa: E402
from minimask.engine.trainer import make_optimizer, to_device, train  # noqa: E402
from minimask.models import MaskRCNN  # noqa: E402
from minimask.ops import nms, roi_align  # noqa: E402

WARMUP_STEPS = 2  # of the demo training: compilation and the allocator's first blocks
FLOAT32_ATOL = 1e-4  # outputs of magnitude ~1 summed over a few hundred float32 terms
LOSS_RTOL = 1e-3  # the five losses of one step, float32, different summation orders


@dataclasses.dataclass
class Sizes:
    """The workloads' sizes: bench_ops.py's and the demo's, or the toy's."""

    feature_shape: tuple = (1, 256, 64, 64)
    spatial_scale: float = 0.25
    rois: int = 512
    pooled: int = 7
    sampling: int = 2
    nms_boxes: int = 2000
    nms_iou: float = 0.7
    image_size: int = DEMO_IMAGE_SIZE
    train_images: int = DEMO_TRAIN_IMAGES
    warmup: int = 2  # untimed runs before the timed ones, after the first (compiling) one
    toy: bool = False

    @classmethod
    def toy_sizes(cls):
        """Each simulated training step costs a minute: the fewest of them."""
        return cls(
            feature_shape=(1, 4, 8, 8),
            rois=8,
            pooled=2,
            sampling=2,
            nms_boxes=32,
            image_size=32,
            train_images=4,
            warmup=0,
            toy=True,
        )


def model_config(num_classes, steps, sizes):
    """The demo's recipe; for the toy, the smallest model that runs every stage
    (tests/cuda_model_case.py)."""
    if not sizes.toy:
        return demo_config(num_classes, steps)
    from cuda_model_case import config

    return dataclasses.replace(config(), num_classes=num_classes, max_iters=steps)


def timed_ms(step, repeats, device, warmup):
    """(median_ms of ``step`` after ``warmup`` runs, the GPU waited for inside each timed
    run; minimask.cuda.count() of the last run)."""
    last = []

    def waited():
        with minimask.cuda.count() as counted:
            step()
            if device == "cuda":
                minimask.cuda.synchronize()
        last[:] = [counted]

    return median_ms(waited, repeats, warmup=warmup), last[0]


def device_row():
    from numba import cuda

    gpu = cuda.get_current_device()
    name = getattr(gpu, "name", "numba's CUDA simulator")
    name = name.decode() if isinstance(name, bytes) else str(name)
    try:
        free, total = cuda.current_context().get_memory_info()
        memory = f"{total / 2**30:.0f} GiB"
    except Exception:  # the simulator has no memory to report
        memory = "n/a"
    import numba_cuda

    version = getattr(numba_cuda, "__version__", "?")
    cc = ".".join(map(str, gpu.compute_capability))
    return ("device", f"{name}, sm {cc}, {memory}; numba-cuda {version}", f"{os.cpu_count()} cores")


def run_cuda_tests(paths, toy):
    """The CUDA tests in a child pytest, on the device unless ``toy``; (row, passed)."""
    env = dict(os.environ)
    if not toy:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + paths,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    minutes = (time.perf_counter() - began) / 60
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1].strip("= ")
    where = "the simulator" if toy else "the device"
    row = ("CUDA tests", f"{summary} ({minutes:.1f} min on {where})", "")
    return row, done.returncode == 0


def roi_inputs(rng, sizes):
    """A feature map and boxes inside it (bench_ops.py's roi_inputs, at ``sizes``)."""
    x = rng.standard_normal(sizes.feature_shape, dtype=np.float32)
    image_size = sizes.feature_shape[2] / sizes.spatial_scale
    side = rng.uniform(image_size / 32, image_size / 2, (sizes.rois, 2))
    low = rng.uniform(0, image_size - side)
    boxes = np.concatenate([np.zeros((sizes.rois, 1)), low, low + side], 1).astype(np.float32)
    return x, boxes


def op_rows(sizes, repeats):
    """RoIAlign forward, forward + backward and NMS on cuda against cpu; (rows, agree)."""
    rng = np.random.default_rng(0)
    x, rois = roi_inputs(rng, sizes)
    kwargs = {
        "spatial_scale": sizes.spatial_scale,
        "sampling_ratio": sizes.sampling,
        "aligned": True,
    }
    grad = rng.standard_normal((sizes.rois, x.shape[1], sizes.pooled, sizes.pooled))
    low = rng.uniform(0, 512, (sizes.nms_boxes, 2))
    boxes = np.concatenate([low, low + rng.uniform(16, 128, (sizes.nms_boxes, 2))], 1)
    scores = rng.random(sizes.nms_boxes)

    def on(device):
        xt = minimask.tensor(x, device=device)
        rt = minimask.tensor(rois, device=device)
        gt = minimask.tensor(grad.astype(np.float32), device=device)
        bt = minimask.tensor(boxes.astype(np.float32), device=device)
        st = minimask.tensor(scores.astype(np.float32), device=device)

        def forward():
            return roi_align(xt, rt, sizes.pooled, **kwargs)

        def forward_backward():
            leaf = minimask.tensor(x, device=device, requires_grad=True)
            roi_align(leaf, rt, sizes.pooled, **kwargs).backward(gt)
            return leaf.grad

        def suppress():
            return nms(bt, st, sizes.nms_iou)

        return {"roi_align fwd": forward, "roi_align fwd+bwd": forward_backward, "nms": suppress}

    cuda_ops, cpu_ops = on("cuda"), on("cpu")
    rows, agree = [], True
    for name in cuda_ops:
        ours, reference = cuda_ops[name]().numpy(), cpu_ops[name]().numpy()
        same = ours.shape == reference.shape and np.allclose(
            ours, reference, rtol=0, atol=FLOAT32_ATOL
        )
        agree &= bool(same)
        cuda_ms, _ = timed_ms(cuda_ops[name], max(repeats, 1), "cuda", sizes.warmup)
        cpu_ms, _ = timed_ms(cpu_ops[name], max(repeats, 1), "cpu", sizes.warmup)
        verdict = "" if same else " (cuda and cpu DISAGREE)"
        rows.append((f"{name} ms{verdict}", f"{cuda_ms:.2f}", f"{cpu_ms:.2f}"))
    label = (
        f"ops: RoIAlign {sizes.feature_shape}, {sizes.rois} boxes, {sizes.pooled}x{sizes.pooled}; "
        f"NMS {sizes.nms_boxes} boxes"
    )
    return [(label, "cuda", "cpu"), *rows], agree


def training_step_rows(dataset, sizes, repeats):
    """One training step of the model on cuda against cpu; (rows, agree)."""
    cfg = model_config(len(dataset.category_ids), 1, sizes)
    images, targets = TrainingBatches(dataset, 2, 0, 0.0).examples(0)

    def stepper(device):
        minimask.manual_seed(0)
        model = MaskRCNN(cfg).to(device).train()
        optimizer, _ = make_optimizer(model, cfg)
        batch = [image.to(device) for image in images], [to_device(t, device) for t in targets]

        return lambda: sgd_step(model, optimizer, *batch)

    cuda_step, cpu_step = stepper("cuda"), stepper("cpu")
    first_cuda, cuda_ms, counted = _first_step(cuda_step, "cuda")
    first_cpu, cpu_ms, _ = _first_step(cpu_step, "cpu")
    agree = bool(np.allclose(first_cuda, first_cpu, rtol=LOSS_RTOL, atol=0))
    which = "the first step, compiling"
    if repeats:
        which = f"median of {repeats} steps after {1 + sizes.warmup} untimed"
        cuda_ms, counted = timed_ms(cuda_step, repeats, "cuda", sizes.warmup)
        cpu_ms, _ = timed_ms(cpu_step, repeats, "cpu", sizes.warmup)
    verdict = "" if agree else " (first losses DISAGREE)"
    return [
        (f"training step ms, 2 images ({which}){verdict}", f"{cuda_ms:.1f}", f"{cpu_ms:.1f}"),
        ("training step: first losses", _losses(first_cuda), _losses(first_cpu)),
        ("training step: launches, allocations", _counts(counted.as_dict()), ""),
        ("training step: copies H2D, D2H; waits", _copies(counted.as_dict()), ""),
    ], agree


def _first_step(step, device):
    """(its losses, ms, counts) of the first call of a training step."""
    began = time.perf_counter()
    with minimask.cuda.count() as counted:
        values = step()
        if device == "cuda":
            minimask.cuda.synchronize()
    return values, 1e3 * (time.perf_counter() - began), counted


def demo_training_rows(dataset, steps, sizes, out_dir):
    """The demo recipe trained ``steps`` steps on cuda: time, losses, counters, memory."""
    cfg = model_config(len(dataset.category_ids), steps, sizes)
    minimask.cuda.reset_stats()
    with minimask.cuda.count() as counted:
        summary = train(cfg, dataset, out_dir, device="cuda", progress=True)
    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as f:
        log = [json.loads(line) for line in f if line.strip()]
    timed = log[WARMUP_STEPS:] or log
    per_step = {k: v / len(log) for k, v in counted.as_dict().items()}
    memory = minimask.cuda.memory_stats()
    seconds = sum(r["seconds"] for r in timed) / len(timed)
    return [
        (f"demo training, {len(log)} steps: s/step", f"{seconds:.3f}", ""),
        ("demo training: loss first, last", f"{log[0]['loss']:.3f}, {log[-1]['loss']:.3f}", ""),
        ("demo training per step: launches, allocations", _counts(per_step), ""),
        ("demo training per step: copies H2D, D2H; waits", _copies(per_step), ""),
        ("memory: peak allocated, cached (MiB)", _memory(memory), ""),
        ("memory: allocator, cache hits, misses", _cache(memory), ""),
        ("demo training: minutes in all", f"{summary['seconds'] / 60:.1f}", ""),
    ]


def _losses(values):
    return ", ".join(f"{v:.4f}" for v in values)


def _counts(c):
    return f"{c['launches']:,.0f}, {c['allocations']:,.0f} ({c['allocated_bytes'] / 2**20:.1f} MiB)"


def _copies(c):
    return (
        f"{c['h2d']:,.0f} ({c['h2d_bytes'] / 2**10:.1f} KiB), "
        f"{c['d2h']:,.0f} ({c['d2h_bytes'] / 2**10:.1f} KiB); {c['syncs']:,.0f}"
    )


def _memory(m):
    return f"{m['peak_allocated_bytes'] / 2**20:.1f}, {m['cached_bytes'] / 2**20:.1f}"


def _cache(m):
    return f"{m['allocator']}, {m['hits']:,}, {m['misses']:,}"


def table(rows, toy):
    lines = ["| check | cuda | cpu |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if toy:
        lines.append("\nA toy run in numba's simulator: its times say nothing about a GPU.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.md", help="the Markdown table's file")
    parser.add_argument("--steps", type=int, default=300, help="demo training steps")
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed runs (0: the training step's first)"
    )
    parser.add_argument("--tests", nargs="*", help="CUDA test files (all test_cuda_*.py)")
    parser.add_argument("--toy", action="store_true", help="smallest sizes, for the simulator")
    args = parser.parse_args(argv)
    if not minimask.cuda.is_available():
        print("gpu_check: no NVIDIA GPU (numba.cuda.is_available() is False); it needs one")
        return 1
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    if simulated and not args.toy:
        print("gpu_check: NUMBA_ENABLE_CUDASIM=1 runs numba's simulator; add --toy for that")
        return 1
    sizes = Sizes.toy_sizes() if args.toy else Sizes()
    minimask.use_deterministic_algorithms(True)
    tests = args.tests or sorted(glob.glob(str(ROOT / "tests" / "test_cuda_*.py")))
    began = time.perf_counter()

    def stage(name):
        print(f"[{(time.perf_counter() - began) / 60:5.1f} min] {name}", flush=True)

    rows = [device_row()]
    stage(f"the CUDA tests ({len(tests)} files)")
    test_row, tests_passed = run_cuda_tests(tests, args.toy)
    rows.append(test_row)
    stage(f"CUDA tests: {test_row[1]}; now the ops")
    ops, ops_agree = op_rows(sizes, args.repeats)
    rows += ops
    with tempfile.TemporaryDirectory(prefix="minimask-gpu-check-") as scratch:
        stage("the shapes data")
        paths = make_shapes_dataset(
            os.path.join(scratch, "data"), sizes.train_images, 0, sizes.image_size, seed=0
        )
        dataset = CocoDetection(paths["train_images"], paths["train_annotations"])
        stage("a training step, cuda and cpu")
        step_rows, step_agree = training_step_rows(dataset, sizes, args.repeats)
        rows += step_rows
        stage(f"the demo recipe, {args.steps} steps on cuda")
        rows += demo_training_rows(dataset, args.steps, sizes, os.path.join(scratch, "run"))
    stage("done")
    text = table(rows, args.toy)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print("\n" + text + f"\nwritten to {args.out}")
    return 0 if tests_passed and ops_agree and step_agree else 1


if __name__ == "__main__":
    sys.exit(main())
