"""Training throughput on one machine: 1 process x T threads against N MPI ranks x T/N.

    python benchmarks/bench_distributed.py [--ranks 2] [--threads 2] [--iters 12]
                                           [--batch-size 4] [--preset small]

Both runs train the same preset on the same synthetic shapes (``make-shapes``, 128-pixel
images) with the same global batch, through the CLI: ``minimask train --threads T`` and
``mpiexec -n N minimask train`` (each rank then takes T / N threads). The first two steps
(Numba's compilation, caches) are left out; images/s = batch size x steps / their summed
seconds, from each run's metrics.jsonl (rank 0's clock, which waits for the slowest rank
at every sum). Run it alone on the machine. Prints a Markdown table.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

WARMUP_STEPS = 2


def _train_command(data, out, args):
    return [
        sys.executable, "-m", "minimask", "train", "--train-images",
        os.path.join(data, "images", "train"), "--train-ann",
        os.path.join(data, "annotations", "instances_train.json"), "--out", out,
        "--preset", args.preset, "--iters", str(args.iters), "--batch-size",
        str(args.batch_size), "--checkpoint-period", str(10 * args.iters), "--quiet",
    ]  # fmt: skip


def _images_per_second(out, batch_size):
    with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][WARMUP_STEPS:]
    return batch_size * len(rows) / sum(r["seconds"] for r in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threads of the machine")
    parser.add_argument("--iters", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--preset", default="small")
    args = parser.parse_args(argv)
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit('no mpiexec: pip install -e ".[distributed]"')
    with tempfile.TemporaryDirectory(prefix="minimask-dp-") as scratch:
        data = os.path.join(scratch, "shapes")
        subprocess.run(
            [sys.executable, "-m", "minimask", "make-shapes", "--out", data, "--train", "16",
             "--val", "2", "--seed", "0"],
            check=True, capture_output=True,
        )  # fmt: skip
        one = os.path.join(scratch, "one")
        command = _train_command(data, one, args) + ["--threads", str(args.threads)]
        subprocess.run(command, check=True, capture_output=True)
        many = os.path.join(scratch, "many")
        subprocess.run(
            [mpiexec, "-n", str(args.ranks), *_train_command(data, many, args)],
            check=True,
            capture_output=True,
        )
        rows = [
            (f"1 process x {args.threads} threads", _images_per_second(one, args.batch_size)),
            (
                f"{args.ranks} ranks x {max(1, args.threads // args.ranks)} thread(s)",
                _images_per_second(many, args.batch_size),
            ),
        ]
    print(f"{args.preset} preset, global batch {args.batch_size}, 128-pixel shapes\n")
    print("| run | images/s | ratio |\n|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} | {rate / rows[0][1]:.2f} |")


if __name__ == "__main__":
    main()
