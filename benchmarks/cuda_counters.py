"""Benchmark: what one training step and one inference of a MaskRCNN ask of the GPU,
counted by ``minimask.cuda.count()`` (minimask/cuda/array/counters.py).

The batch of two images is tests/cuda_model_case.py's (32 x 32 and 24 x 32), in float32 as
``minimask train`` runs it. The model (``--preset``): "case", that file's (the tiny preset
shrunk until numba's simulator runs every stage in a minute or two), or the "tiny" or
"small" preset as it is, scaled to these 32-pixel images (their widths and RoI counts, on
the smallest input: the counts of launches, copies and waits depend on the architecture
and the number of images and levels, not on the image size).

    training step   the second of two steps (the first puts the model's numbers, such as
                    GroupNorm's epsilon, on the GPU, where they stay): the batch moved to
                    "cuda", forward, the five loss values to the host (the log), backward,
                    SGD with momentum and weight decay, zero_grad; the trainer's step
    inference       model.eval(); model(images): detections with their masks pasted

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/cuda_counters.py [--preset case|tiny|small]
                                                              [--kernels 10] [--copies]

Prints a Markdown table (launches, work items, allocations, copies each way with their
bytes, waits) and the wall time of each; ``--kernels N`` adds the N launching functions
with the most work items, ``--copies`` every device-to-host copy of the training step with
the model code that asked for it. Without a GPU, set NUMBA_ENABLE_CUDASIM=1 (the counts
are the same; the times are the simulator's).
"""

import argparse
import collections
import pathlib
import sys
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cuda_model_case import NUM_CLASSES, batch, config  # noqa: E402
from training_step import sgd_step  # noqa: E402

import minimask  # noqa: E402
from minimask.engine.trainer import make_optimizer  # noqa: E402
from minimask.models import MaskRCNN, MaskRCNNConfig  # noqa: E402

COLUMNS = (
    ("launches", "launches"),
    ("work items", "work_items"),
    ("allocations", "allocations"),
    ("allocated bytes", "allocated_bytes"),
    ("H2D copies", "h2d"),
    ("H2D bytes", "h2d_bytes"),
    ("D2H copies", "d2h"),
    ("D2H bytes", "d2h_bytes"),
    ("syncs", "syncs"),
)


PRESETS = {
    "case": config,
    "tiny": lambda: MaskRCNNConfig.tiny(NUM_CLASSES).scaled_to(32, 32),
    "small": lambda: MaskRCNNConfig.small(NUM_CLASSES).scaled_to(32, 32),
}


def training_step(net, optimizer, scheduler):
    """The trainer's step (engine/trainer.py) on the case's batch, moved to the GPU."""
    images, targets = batch(minimask.float32, "cpu")
    images = [image.to("cuda") for image in images]
    targets = [{k: v.to("cuda") for k, v in t.items()} for t in targets]
    sgd_step(net, optimizer, images, targets, scheduler)


def inference(net):
    images, _ = batch(minimask.float32, "cuda")
    net.eval()
    net(images)
    net.train()


def _caller():
    """'file:line function' of the code that asked for a copy: the innermost frame in
    minimask outside the CUDA backend and the autograd engine, else the innermost one
    outside the CUDA backend (the backward engine, or this script reading the losses)."""
    frames = [
        (frame, pathlib.Path(frame.filename))
        for frame in reversed(traceback.extract_stack()[:-2])
        if ROOT / "minimask" / "cuda" not in pathlib.Path(frame.filename).parents
    ]
    chosen = next(
        (
            (frame, path)
            for frame, path in frames
            if ROOT / "minimask" in path.parents
            and ROOT / "minimask" / "autograd" not in path.parents
        ),
        frames[0],
    )
    frame, path = chosen
    return f"{path.relative_to(ROOT)}:{frame.lineno} {frame.name}"


def record_copies_to_host():
    """Note the caller of every device-to-host copy from now on: {caller: count}."""
    from minimask.cuda.array import memory

    callers = collections.Counter()
    to_host = memory.to_host

    def noted(buffer):
        callers[_caller()] += 1
        return to_host(buffer)

    memory.to_host = noted
    return callers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", type=int, default=0, help="list the N busiest launchers")
    parser.add_argument("--copies", action="store_true", help="list the training step's D2H")
    parser.add_argument(
        "--preset", choices=PRESETS, default="case", help="the model (module docstring)"
    )
    args = parser.parse_args()
    if not minimask.cuda.is_available():
        sys.exit("no CUDA GPU: set NUMBA_ENABLE_CUDASIM=1 to count in numba's simulator")
    minimask.use_deterministic_algorithms(True)

    cfg = PRESETS[args.preset]()
    minimask.manual_seed(0)
    net = MaskRCNN(cfg).to(minimask.float32).to("cuda")
    net.train()
    optimizer, scheduler = make_optimizer(net, cfg)
    minimask.manual_seed(1)
    training_step(net, optimizer, scheduler)  # the first step (module docstring)
    callers = record_copies_to_host() if args.copies else None
    rows = []
    for name, run in (
        ("training step", lambda: training_step(net, optimizer, scheduler)),
        ("inference", lambda: inference(net)),
    ):
        began = time.perf_counter()
        with minimask.cuda.count() as counted:
            run()
        rows.append((name, counted, time.perf_counter() - began))
        if callers is not None and name == "training step":
            copies = dict(callers)

    print("| | " + " | ".join(title for title, _ in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for name, counted, _ in rows:
        values = counted.as_dict()
        print(f"| {name} | " + " | ".join(f"{values[key]:,}" for _, key in COLUMNS) + " |")
    print()
    for name, _, seconds in rows:
        print(f"{name}: {seconds:.1f} s wall")
    for name, counted, _ in rows if args.kernels else ():
        print(f"\n{name}: the {args.kernels} launching functions with the most work items")
        by_kernel = counted.as_dict(by_kernel=True)["by_kernel"]
        for launcher, value in list(by_kernel.items())[: args.kernels]:
            launches, items = value["launches"], value["work_items"]
            print(f"  {launcher:45s} {launches:6,} launches {items:9,} work items")
    if callers is not None:
        print("\ntraining step: device-to-host copies by caller")
        for caller, count in sorted(copies.items(), key=lambda item: (-item[1], item[0])):
            print(f"  {count:3d}  {caller}")


if __name__ == "__main__":
    main()
