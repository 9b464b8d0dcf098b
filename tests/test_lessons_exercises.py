"""``python lessons/check.py``: every exercise's checker passes its reference solution and
fails its blank stub (lessons/exercises/__init__.py describes an exercise). The reference
of each checker is named in its docstring; these tests check the checkers
themselves, and that every lesson has at least three exercises."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_checker_passes_its_solution_and_fails_its_blank_stub():
    done = subprocess.run(
        [sys.executable, str(ROOT / "lessons" / "check.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    match = re.fullmatch(
        r"exercises: (\d+), pass with solutions: (\d+), fail when blank: (\d+)", last
    )
    assert match, done.stdout[-3000:] + done.stderr[-3000:]
    total, passed, failed_blank = map(int, match.groups())
    assert done.returncode == 0 and passed == failed_blank == total > 0, done.stdout[-3000:]


def test_every_lesson_has_at_least_three_exercises():
    stub_first_line = re.compile(r"#\s*Exercise\s+(\d\d)\.\d+:")
    counts = {}
    for path in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        sources = ["".join(c["source"]).strip() for c in cells if c["cell_type"] == "code"]
        counts[path.name] = sum(bool(stub_first_line.match(s)) for s in sources)
    assert len(counts) >= 13 and all(n >= 3 for n in counts.values()), counts
