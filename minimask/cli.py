"""The ``minimask`` command line."""

import argparse
import sys

import minimask


def autograd_demo():
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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minimask",
        description="An educational Mask R-CNN built from scratch on NumPy and Numba.",
    )
    parser.add_argument("--version", action="version", version=f"minimask {minimask.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "autograd-demo", help="fit a line by gradient descent with minimask's autograd"
    )
    shapes = commands.add_parser(
        "make-shapes", help="write a synthetic shapes dataset in COCO format (seeded)"
    )
    shapes.add_argument("--out", required=True, help="folder to write images/ and annotations/")
    shapes.add_argument("--train", type=int, default=200, help="training images (200)")
    shapes.add_argument("--val", type=int, default=50, help="validation images (50)")
    shapes.add_argument("--size", type=int, default=128, help="image side in pixels (128)")
    shapes.add_argument("--seed", type=int, default=0, help="random seed (0)")
    return parser


def make_shapes(args):
    from minimask.data import make_shapes_dataset

    paths = make_shapes_dataset(
        args.out, n_train=args.train, n_val=args.val, size=args.size, seed=args.seed
    )
    for name, path in paths.items():
        print(f"{name:18s} {path}")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "autograd-demo":
        autograd_demo()
        return 0
    if args.command == "make-shapes":
        make_shapes(args)
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
