"""Check the lessons' exercises: every checker against its reference solution (it must
pass) and against the blank stub in its notebook (it must fail, which shows the checker
can fail).

    python lessons/check.py

An exercise ``NN.k`` is a stub cell of lesson NN (first line ``# Exercise NN.k: title``),
a check cell after it (``check("NN.k", globals())``), a checker in
``lessons/exercises/lessonNN.py`` and a solution in ``lessons/solutions/lessonNN.py``
(``lessons/exercises/__init__.py`` says more). Each stub runs here on its own, in a fresh
namespace, as the notebook's first run would. Prints one line per exercise, then
``exercises: N, pass with solutions: P, fail when blank: F``; exits with 1 unless P = F = N
and every stub has its check cell, checker and solution.
"""

import importlib
import os
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
if not os.path.exists("/dev/nvidiactl"):  # before numba is imported: lesson 02's kernels
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
sys.path.insert(0, str(HERE))

import exercises  # noqa: E402
import nbformat  # noqa: E402

STUB_FIRST_LINE = re.compile(r"#\s*Exercise\s+(\d\d\.\d+):\s*(.+)")


def notebook_stubs():
    """{key: (notebook name, stub source, has a check cell)} of every lesson."""
    stubs = {}
    for path in sorted(HERE.glob("[0-9][0-9]_*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        for index, cell in enumerate(cells):
            match = STUB_FIRST_LINE.match(cell.source.strip())
            if not match:
                continue
            key = match.group(1)
            following = cells[index + 1].source if index + 1 < len(cells) else ""
            has_check = re.search(rf"check\(\s*[\"']{re.escape(key)}[\"']", following) is not None
            if key in stubs:
                raise SystemExit(f"{path.name}: exercise {key} has two stub cells")
            stubs[key] = (path.name, cell.source, has_check)
    return stubs


def blank_namespace(source):
    """The names a stub cell defines, run on its own."""
    namespace = {"__name__": "__exercise_stub__"}
    exec(compile(source, "<stub>", "exec"), namespace)
    return namespace


def main():
    stubs = notebook_stubs()
    lessons = sorted({key.split(".")[0] for key in stubs})
    for lesson in lessons:
        importlib.import_module(f"exercises.lesson{lesson}")
    keys = sorted(set(stubs) | set(exercises.REGISTRY), key=lambda k: tuple(map(int, k.split("."))))
    passed = failed_blank = 0
    complete = True
    for key in keys:
        entry = exercises.REGISTRY.get(key)
        if entry is None or key not in stubs:
            print(f"{key}  {'has no checker' if entry is None else 'has no stub cell in a lesson'}")
            complete = False
            continue
        notebook, source, has_check = stubs[key]
        try:
            solution = vars(importlib.import_module(f"solutions.lesson{key.split('.')[0]}"))
        except ImportError as error:
            solution = {}
            print(f"{key}  no solutions module: {error}")
        ok, message = entry.run(solution)
        blank_ok, blank_message = entry.run(blank_namespace(source))
        passed += ok
        failed_blank += not blank_ok
        if not has_check:
            complete = False
        print(
            f"{key}  {entry.title} ({notebook}): solution "
            f"{'passes' if ok else 'FAILS: ' + message}; blank "
            f"{'fails (' + blank_message + ')' if not blank_ok else 'PASSES'}"
            f"{'' if has_check else '; NO check cell after the stub'}"
        )
    total = len(keys)
    print(f"exercises: {total}, pass with solutions: {passed}, fail when blank: {failed_blank}")
    return 0 if complete and passed == failed_blank == total else 1


if __name__ == "__main__":
    sys.exit(main())
