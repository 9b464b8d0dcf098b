"""The ``minimask`` command line."""

import argparse
import dataclasses
import os
import sys

import minimask


def autograd_demo(args):
    """Fit y = 3x - 1 with a single weight and bias, printing the loss as it falls."""
    minimask.manual_seed(0)
    x = minimask.randn(64, 1)
    y = 3 * x - 1
    w = minimask.zeros(1, 1, requires_grad=True)
    b = minimask.zeros(1, requires_grad=True)
    for step in range(51):
        loss = ((x @ w + b - y) ** 2).mean()
        w.grad = b.grad = None
        loss.backward()
        with minimask.no_grad():
            w.data -= 0.1 * w.grad.data
            b.data -= 0.1 * b.grad.data
        if step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.6f}")
    print(f"learned w = {w.item():.4f} (true 3), b = {b.item():.4f} (true -1)")
    return 0


def _add_make_shapes_arguments(shapes):
    shapes.add_argument("--out", required=True, help="folder to write images/ and annotations/")
    shapes.add_argument("--train", type=int, default=200, help="training images (200)")
    shapes.add_argument("--val", type=int, default=50, help="validation images (50)")
    shapes.add_argument("--size", type=int, default=128, help="image side in pixels (128)")
    shapes.add_argument("--seed", type=int, default=0, help="random seed (0)")


def _add_coco_subset_arguments(subset):
    subset.add_argument("--ann", required=True, help="COCO instances JSON to read")
    subset.add_argument(
        "--categories",
        required=True,
        type=_category_names,
        help="category names, comma-separated (person,car,traffic light)",
    )
    subset.add_argument(
        "--max-images",
        type=_positive_int,
        help="keep at most this many images, a seeded sample (all)",
    )
    subset.add_argument(
        "--min-area",
        type=float,
        default=0.0,
        help="drop every instance whose COCO area is below this (pixels of the original "
        "image); an image left with no instance is not selected, and small instances of "
        "the images kept are removed too; crowd regions are kept whatever their area (0)",
    )
    subset.add_argument("--seed", type=int, default=0, help="seed of the sample (0)")
    subset.add_argument("--out", required=True, help="COCO instances JSON to write")


def _add_train_arguments(train):
    train.add_argument("--train-images", required=True, help="folder of the training images")
    train.add_argument("--train-ann", required=True, help="COCO instances JSON of the training set")
    train.add_argument(
        "--val-images", help="folder of the validation images (evaluated at the end)"
    )
    train.add_argument("--val-ann", help="COCO instances JSON of the validation set")
    train.add_argument(
        "--out", required=True, help="run folder: checkpoint, metrics log, loss curve"
    )
    train.add_argument(
        "--preset", choices=("small", "tiny"), default="small", help="model size (small)"
    )
    train.add_argument("--iters", type=int, help="training steps (preset: 1000)")
    train.add_argument("--batch-size", type=int, help="images per step (preset: 2)")
    train.add_argument("--lr", type=float, help="base learning rate (preset: 0.02)")
    train.add_argument(
        "--min-size", type=int, help="shortest image side after resizing (preset: 128)"
    )
    train.add_argument("--max-size", type=int, help="longest side at most (1.5 x --min-size)")
    train.add_argument(
        "--min-size-train",
        type=_size_list,
        help="multi-scale training: shortest sides such as 160,176,192, one drawn per image "
        "and step (detectron2's INPUT.MIN_SIZE_TRAIN); --max-size caps each; evaluation "
        "uses --min-size (off: train at --min-size)",
    )
    train.add_argument("--checkpoint-period", type=int, help="steps between checkpoints (500)")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    train.add_argument(
        "--threads",
        type=_positive_int,
        help="Numba and BLAS threads of this process (under mpiexec: the machine's cores "
        "over its processes)",
    )
    train.add_argument("--seed", type=int, help="random seed (0)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_evaluate_arguments(evaluate):
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--images", required=True, help="folder of the images")
    evaluate.add_argument("--ann", required=True, help="COCO instances JSON")
    evaluate.add_argument("--out", help="folder for results.json and metrics.json")
    evaluate.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_predict_arguments(predict):
    predict.add_argument("--checkpoint", required=True)
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--out", required=True, help="folder for the PNGs")
    predict.add_argument(
        "--score-threshold", type=float, default=0.5, help="draw at or above (0.5)"
    )
    predict.add_argument("--device", choices=("cpu", "cuda"), default="cpu")


def _add_demo_arguments(demo):
    demo.add_argument("--out", default="minimask-demo", help="output folder (./minimask-demo)")
    demo.add_argument("--iters", type=int, help="training steps (3400)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (0)")
    demo.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")


def _positive_int(text):
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _size_list(text):
    """argparse type: comma-separated image sides, whole numbers >= 1."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated sides in pixels such as 160,176,192, got {text!r}"
        )
    return sizes


def _category_names(text):
    """argparse type: comma-separated category names, at least one."""
    from minimask.data.coco_subset import parse_category_names

    names = parse_category_names(text)
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated category names, got {text!r}")
    return names


def build_parser():
    """The ``minimask`` parser: one sub-command per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="minimask",
        description="An educational Mask R-CNN built from scratch on NumPy and Numba.",
    )
    parser.add_argument("--version", action="version", version=f"minimask {minimask.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text))
    return parser


def train_command(args):
    from minimask.data.coco import CocoDetection
    from minimask.engine import distributed
    from minimask.engine.checkpoint import load_model
    from minimask.engine.evaluator import evaluate
    from minimask.engine.trainer import NonFiniteLossError, TrainingInterrupted, train
    from minimask.models import MaskRCNNConfig

    if (args.val_images is None) != (args.val_ann is None):
        raise SystemExit("train: give both --val-images and --val-ann, or neither")
    world = distributed.world()
    lead = world.rank == 0
    if args.threads is not None or world.size > 1:
        distributed.set_threads(args.threads or distributed.threads_per_rank(world))
    train_set = CocoDetection(args.train_images, args.train_ann)
    for what, count in (("images", len(train_set)), ("categories", len(train_set.category_ids))):
        if count == 0:  # nothing to train on, or no class to train
            raise ValueError(f"{args.train_ann} lists no {what}")
    if lead:
        print(train_set.summary())
    preset = getattr(MaskRCNNConfig, args.preset)
    cfg = preset(len(train_set.category_ids))
    if args.min_size is not None:
        cfg = cfg.scaled_to(args.min_size, args.max_size)
    elif args.max_size is not None:
        cfg = dataclasses.replace(cfg, max_size=args.max_size)
    overrides = {
        "max_iters": args.iters,
        "batch_size": args.batch_size,
        "base_lr": args.lr,
        "seed": args.seed,
        "checkpoint_period": args.checkpoint_period,
        "min_size_train": args.min_size_train,
    }
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    try:
        summary = distributed.run_on_every_rank(
            lambda: train(
                cfg, train_set, args.out, args.device, args.resume, not args.quiet, world
            ),
            world,
            every_rank_stops=(NonFiniteLossError, TrainingInterrupted),
        )
    except NonFiniteLossError as error:  # every rank stops at the same step
        if lead:
            print(f"train: {error}", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:
        if lead:
            print(f"train: {error}", file=sys.stderr)
        return 130  # the shell's status for a process stopped by Ctrl-C
    if not lead:
        return 0
    last = summary["last"]
    print(
        f"trained {summary['steps']} steps in {summary['seconds'] / 60:.1f} min; last step "
        + ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k.startswith("loss"))
    )
    for name in ("checkpoint", "log", "loss_curve"):
        print(f"  {name:11s} {summary[name]}")
    if args.val_images is not None:
        val_set = CocoDetection(args.val_images, args.val_ann)
        model, meta = load_model(summary["checkpoint"], args.device)
        out = os.path.join(args.out, "eval")
        evaluate(model, val_set, meta["category_ids"], out, args.device, not args.quiet)
        print(f"  metrics     {os.path.join(out, 'metrics.json')}")
    return 0


def evaluate_command(args):
    from minimask.data.coco import CocoDetection
    from minimask.engine.checkpoint import load_model
    from minimask.engine.evaluator import evaluate

    model, meta = load_model(args.checkpoint, args.device)
    dataset = CocoDetection(args.images, args.ann)
    if [int(c) for c in dataset.category_ids] != meta["category_ids"]:
        raise SystemExit(
            f"evaluate: {args.ann} has categories {dataset.category_ids}, the checkpoint was "
            f"trained on {meta['category_ids']}"
        )
    metrics = evaluate(model, dataset, meta["category_ids"], args.out, args.device, not args.quiet)
    for kind, values in metrics.items():
        print(f"{kind:5s} " + "  ".join(f"{k} {v:.3f}" for k, v in values.items()))
    if args.out:
        print(f"wrote {os.path.join(args.out, 'results.json')} and metrics.json")
    return 0


def predict_command(args):
    from minimask.engine.checkpoint import load_model
    from minimask.engine.predict import predict_files

    model, meta = load_model(args.checkpoint, args.device)
    written = predict_files(
        model, args.images, args.out, meta["class_names"], args.device, args.score_threshold
    )
    for path in written:
        print(path)
    return 0


def demo_command(args):
    from minimask.engine.demo import DEMO_ITERS, DEMO_TRAIN_IMAGES, run_demo
    from minimask.engine.demo_cache import keep_in_cache

    iters = args.iters if args.iters is not None else DEMO_ITERS
    summary = run_demo(
        args.out, iters=iters, seed=args.seed, device=args.device, progress=not args.quiet
    )
    cached = keep_in_cache(summary, iters, DEMO_TRAIN_IMAGES, args.seed)
    print(f"  {'cached':12s} {cached} (the lessons load the trained model from there)")
    return 0


def coco_subset_command(args):
    from minimask.data.coco_subset import category_table, write_coco_subset

    rows, n_images = write_coco_subset(
        args.ann, args.out, args.categories, args.max_images, args.min_area, args.seed
    )
    print(category_table(rows, n_images))
    print(f"wrote {args.out}")
    return 0


def make_shapes(args):
    from minimask.data import make_shapes_dataset

    paths = make_shapes_dataset(
        args.out, n_train=args.train, n_val=args.val, size=args.size, seed=args.seed
    )
    for name, path in paths.items():
        print(f"{name:18s} {path}")
    return 0


def _no_arguments(parser):
    """autograd-demo takes none."""


# name -> (help, the function that adds its arguments, the function that runs it)
COMMANDS = {
    "autograd-demo": (
        "fit a line by gradient descent with minimask's autograd",
        _no_arguments,
        autograd_demo,
    ),
    "make-shapes": (
        "write a synthetic shapes dataset in COCO format (seeded)",
        _add_make_shapes_arguments,
        make_shapes,
    ),
    "coco-subset": (
        "write a COCO instances file with only some categories (and a sample of images)",
        _add_coco_subset_arguments,
        coco_subset_command,
    ),
    "train": ("train Mask R-CNN on a COCO-format dataset", _add_train_arguments, train_command),
    "evaluate": (
        "COCO bbox and segm AP of a checkpoint",
        _add_evaluate_arguments,
        evaluate_command,
    ),
    "predict": (
        "draw a checkpoint's predictions on images",
        _add_predict_arguments,
        predict_command,
    ),
    "demo": (
        "make shapes data, train, evaluate, draw predictions (no download)",
        _add_demo_arguments,
        demo_command,
    ),
}


def main(argv=None):
    """Run one command; bad input (a missing or unreadable file, a folder given for a file,
    a value out of range) ends with the message and exit status 1, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    run = COMMANDS[args.command][2]
    try:
        return run(args)
    except (OSError, ValueError) as error:  # an OSError's message names its file
        raise SystemExit(f"minimask {args.command}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
