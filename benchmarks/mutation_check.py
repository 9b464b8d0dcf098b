"""Mutation check: does the test suite notice a one-line semantic change?

Each mutation below replaces one snippet of minimask/models, data, engine or optim with a
plausible mistake (an inverted scale, an off-by-one comparison, a dropped term). For each,
the script copies the repository (the files git tracks, plus any untracked source) into a
scratch folder, applies the change there, runs the test suite with ``-x`` (stop at the first
failure) and records whether some test failed ("killed") or all passed ("survived"). The
working tree is never touched. A snippet that does not occur exactly once is an error: the
list must follow the code.

    python benchmarks/mutation_check.py                 # every mutation, the whole suite
    python benchmarks/mutation_check.py -k crowd        # mutations whose name contains "crowd"
    python benchmarks/mutation_check.py --tests tests/test_models_mask_rcnn.py

The suite runs in one process by default (``--workers 1``), the tests of the mutated package
first, so ``-x`` stops a killed mutation's run at its first failure; under pytest-xdist the
workers would first finish the tests they hold, some of them minutes long. It ends with a
table, the first failing test of each killed mutation, and the score, killed / total. The
whole run takes about (number of survivors) x (the suite's time in one process) plus a
minute or two per killed mutation.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, file, original snippet, mutated snippet)
MUTATIONS = [
    # ---------------------------------------------------------------- models
    (
        "detections mapped back with the inverse scale",
        "minimask/models/transform.py",
        'resize_boxes(detection["boxes"], size, original)',
        'resize_boxes(detection["boxes"], original, size)',
    ),
    (
        "mask scale inverted",
        "minimask/models/transform.py",
        'target["mask_scale"] = (width / size[1], height / size[0])',
        'target["mask_scale"] = (size[1] / width, size[0] / height)',
    ),
    (
        "RoI positive fraction 0.5",
        "minimask/models/config.py",
        "box_positive_fraction: float = 0.25",
        "box_positive_fraction: float = 0.5",
    ),
    (
        "crowd rule also ignores positive RoIs",
        "minimask/models/roi_heads.py",
        "labels[crowd_covered(candidates, crowd_boxes) & (labels == 0)] = -1",
        "labels[crowd_covered(candidates, crowd_boxes)] = -1",
    ),
    (
        "softmax-mask inference reads channel label - 1",
        "minimask/models/roi_heads.py",
        "channel = np.ones(count, np.int64) if self.class_agnostic_masks else host_labels\n",
        "channel = np.ones(count, np.int64) if self.class_agnostic_masks else host_labels - 1\n",
    ),
    (
        "Matcher: IoU equal to the low threshold counts as background",
        "minimask/models/matcher.py",
        "matches[matched_vals < self.low_threshold] = self.BELOW_LOW_THRESHOLD",
        "matches[matched_vals <= self.low_threshold] = self.BELOW_LOW_THRESHOLD",
    ),
    (
        "Matcher: no low-quality matches",
        "minimask/models/matcher.py",
        "np.nonzero(quality == best_for_each_gt[:, None])",
        "np.nonzero(quality > best_for_each_gt[:, None])",
    ),
    (
        "BoxCoder.encode: dx divided by the height",
        "minimask/models/box_coder.py",
        "        dx = wx * (gx - px) / pw\n",
        "        dx = wx * (gx - px) / ph\n",
    ),
    (
        "sampler: negatives not reduced by the positives",
        "minimask/models/sampler.py",
        "num_neg = min(negative.size, self.batch_size_per_image - num_pos)",
        "num_neg = min(negative.size, self.batch_size_per_image)",
    ),
    (
        "FPN level rounded instead of floored",
        "minimask/models/level_mapper.py",
        "k = np.floor(canonical_level + np.log2(scale / canonical_size + eps))",
        "k = np.round(canonical_level + np.log2(scale / canonical_size + eps))",
    ),
    (
        "RPN: anchors matched to gt 0 are not positive",
        "minimask/models/rpn.py",
        "labels[matches >= 0] = 1",
        "labels[matches > 0] = 1",
    ),
    (
        "RPN box loss normalised by the positives",
        "minimask/models/rpn.py",
        "return loss_objectness / count, box_loss / count",
        "return loss_objectness / count, box_loss / max(pos_idx.size, 1)",
    ),
    (
        "RoI box loss normalised by the positives",
        "minimask/models/roi_heads.py",
        "return loss_classifier, loss_box / count",
        "return loss_classifier, loss_box / max(len(positive), 1)",
    ),
    (
        "RoI heads: background proposals ignored",
        "minimask/models/roi_heads.py",
        "labels[matches == Matcher.BELOW_LOW_THRESHOLD] = 0",
        "labels[matches == Matcher.BELOW_LOW_THRESHOLD] = -1",
    ),
    (
        "crowd rule at intersection >= half the area",
        "minimask/models/crowd.py",
        "return (inter > CROWD_IGNORE_THRESHOLD * area[:, None]).any(axis=1)",
        "return (inter >= CROWD_IGNORE_THRESHOLD * area[:, None]).any(axis=1)",
    ),
    (
        "mask targets without the half-pixel alignment",
        "minimask/models/masks.py",
        "            aligned=True,\n",
        "            aligned=False,\n",
    ),
    (
        "mask paste without the half-cell shift",
        "minimask/models/masks.py",
        "u = (np.arange(n_pixels) + 0.5 - lo) / size * m - 0.5",
        "u = (np.arange(n_pixels) + 0.5 - lo) / size * m",
    ),
    (
        "BoxCoder.decode: the width clip dropped",
        "minimask/models/box_coder.py",
        "dw = clamp(deltas[:, 2::4] / ww, max=self.bbox_xform_clip)",
        "dw = deltas[:, 2::4] / ww",
    ),
    (
        "anchors floored instead of rounded",
        "minimask/models/anchors.py",
        "return np.round(base)",
        "return np.floor(base)",
    ),
    (
        "anchor widths equal to heights",
        "minimask/models/anchors.py",
        "w_ratios = np.float32(1) / h_ratios",
        "w_ratios = h_ratios",
    ),
    (
        "P6 not subsampled",
        "minimask/models/fpn.py",
        "outputs.append(F.max_pool2d(outputs[-1], kernel_size=1, stride=2))",
        "outputs.append(F.max_pool2d(outputs[-1], kernel_size=1, stride=1))",
    ),
    # ---------------------------------------------------------------- data
    (
        "COCO: boxes not clipped to the image's width",
        "minimask/data/coco.py",
        "np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])",
        "np.clip(out[:, 0::2], 0, None, out=out[:, 0::2])",
    ),
    (
        "COCO: categories numbered in file order",
        "minimask/data/coco.py",
        "self.category_ids = sorted(names)",
        "self.category_ids = list(names)",
    ),
    (
        "flip: x1' = W - x1",
        "minimask/data/transforms.py",
        "flipped[:, 0] = b.dtype.type(width) - b[:, 2]",
        "flipped[:, 0] = b.dtype.type(width) - b[:, 0]",
    ),
    (
        "resize: the height ratio from the widths",
        "minimask/data/transforms.py",
        "ratio_h = dtype(new_h) / dtype(orig_h)",
        "ratio_h = dtype(new_w) / dtype(orig_w)",
    ),
    (
        "resize: sizes rounded instead of floored",
        "minimask/data/transforms.py",
        "new_h, new_w = math.floor(height * scale), math.floor(width * scale)",
        "new_h, new_w = round(height * scale), round(width * scale)",
    ),
    (
        "normalize multiplies by std",
        "minimask/data/transforms.py",
        "return (image - mean_t) / std_t",
        "return (image - mean_t) * std_t",
    ),
    # ---------------------------------------------------------------- engine and optim
    (
        "NaN guard lets inf through",
        "minimask/engine/trainer.py",
        "if not all(math.isfinite(v) for v in values.values()):",
        "if any(math.isnan(v) for v in values.values()):",
    ),
    (
        "batches: the same order every epoch",
        "minimask/engine/batches.py",
        "np.random.default_rng((self.seed, epoch)).permutation(n)",
        "np.random.default_rng(self.seed).permutation(n)",
    ),
    (
        "batches: flip when the draw is above the probability",
        "minimask/engine/batches.py",
        "if flip < self.flip_prob:",
        "if flip > self.flip_prob:",
    ),
    (
        "resume: the optimizer's state not restored",
        "minimask/engine/trainer.py",
        '    optimizer.load_state_dict(parts["optimizer"])\n',
        "",
    ),
    (
        "evaluation: masks thresholded at > instead of >=",
        "minimask/engine/coco_evaluation.py",
        "(masks >= mask_threshold)",
        "(masks > mask_threshold)",
    ),
    (
        "SGD: weight decay dropped",
        "minimask/optim/sgd.py",
        'grad = grad + group["weight_decay"] * param.data',
        "grad = grad",
    ),
    (
        "warm-up: factor not ramped",
        "minimask/optim/lr_scheduler.py",
        "return self.warmup_factor * (1 - alpha) + alpha",
        "return self.warmup_factor",
    ),
]


def _source_files():
    """Tracked and untracked-but-not-ignored files, relative to ROOT."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [path for path in out.splitlines() if os.path.isfile(os.path.join(ROOT, path))]


def _copy_repository(destination):
    for path in _source_files():
        target = os.path.join(destination, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, path), target)


def _check_snippets(mutations):
    for name, path, original, _ in mutations:
        with open(os.path.join(ROOT, path)) as f:
            count = f.read().count(original)
        if count != 1:
            raise SystemExit(f"mutation {name!r}: {path} holds its snippet {count} times, not once")


def _ordered_tests(copy, path):
    """Every tests/test_*.py of the copy, those of the mutated package first
    (tests/test_models_*.py for minimask/models/...), so that a killed mutation usually
    stops within a minute or two. Files, not the folder: given a folder too, pytest would
    collect in alphabetical order."""
    package = path.split("/")[1]
    files = sorted(p.name for p in (pathlib.Path(copy) / "tests").glob("test_*.py"))
    first = [name for name in files if name.startswith(f"test_{package}")]
    return [f"tests/{name}" for name in first + [n for n in files if n not in first]]


def _run_suite(copy, tests, workers):
    """(killed, what killed it): killed when some test fails; then the first failing test
    as pytest names it, else pytest's last line."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    command += ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
    env = dict(os.environ, PYTHONPATH=copy, PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("HYPOTHESIS_PROFILE", "ci")  # derandomized: the same verdict every run
    result = subprocess.run(command + tests, cwd=copy, env=env, capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode not in (0, 1):  # 1: tests failed; others: pytest could not run them
        raise SystemExit(f"pytest exited with {result.returncode}:\n{result.stderr[-2000:]}")
    failed = [line.split()[1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return result.returncode == 1, (failed or lines[-1:] or [""])[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="run only mutations whose name contains this")
    parser.add_argument("--tests", nargs="*", help="test paths to run (default: every file)")
    parser.add_argument(
        "--workers", type=int, default=1, help="pytest-xdist workers (1: stops at once)"
    )
    args = parser.parse_args(argv)
    mutations = [m for m in MUTATIONS if args.k in m[0]]
    _check_snippets(mutations)
    rows = []
    with tempfile.TemporaryDirectory(prefix="minimask-mutation-") as copy:
        _copy_repository(copy)
        for name, path, original, mutated in mutations:
            target = os.path.join(copy, path)
            with open(target) as f:
                text = f.read()
            with open(target, "w") as f:
                f.write(text.replace(original, mutated, 1))
            start = time.perf_counter()
            try:
                tests = args.tests or _ordered_tests(copy, path)
                killed, caught_by = _run_suite(copy, tests, args.workers)
            finally:
                with open(target, "w") as f:
                    f.write(text)
            seconds = time.perf_counter() - start
            verdict = "killed" if killed else "SURVIVED"
            rows.append((name, path, verdict, caught_by if killed else ""))
            print(f"{verdict:8}  {seconds:6.0f} s  {name}  ({caught_by})", flush=True)
    killed = sum(verdict == "killed" for _, _, verdict, _ in rows)
    print("\n| mutation | file | result | first failing test |\n|---|---|---|---|")
    for name, path, verdict, caught_by in rows:
        test = f"`{caught_by.removeprefix('tests/')}`" if caught_by else ""
        print(f"| {name} | {path.removeprefix('minimask/')} | {verdict} | {test} |")
    print(f"\nscore: {killed} / {len(rows)} killed")
    return 0 if killed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
