"""Execute every lesson notebook in ``lessons/`` and check that its saved outputs are there.

``test_lesson_runs`` runs each notebook from top to bottom with nbclient in a fresh
``python3`` kernel, with ``lessons/`` as the working directory and this checkout first on
``PYTHONPATH``. The executed copy is thrown away; the committed file is not changed. A cell
that raises fails the test with the notebook, the cell's index and source, and the error.

The kernel gets the environment variable ``MINIMASK_LESSONS_FAST=1``. Lessons that train a
model (05 to 12) read it and train for a few steps only, so that this test stays short;
the lessons without training (01 tensors and autograd, 02 numba kernels) ignore it. See
``lessons/README.md``. On a machine without an NVIDIA device ``tests/conftest.py`` has set
``NUMBA_ENABLE_CUDASIM=1``, which the kernel inherits, so CUDA cells run in numba's
simulator. Lessons 06 and 11 read real COCO images from the folder ``MINIMASK_COCO`` names
(``tests/coco_data.py``): without it they are skipped, and under CI that is an error.

``test_lesson_has_saved_outputs`` checks the committed file: every code cell has been
executed (``execution_count`` is not None), in order from the top, and none saved an error.
The notebooks are read on the project's website as they are committed, outputs included;
re-run one in place after editing it, from ``lessons/`` (the lessons' working directory):
``cd lessons && jupyter execute --inplace NN_name.ipynb`` (``jupyter execute`` is nbclient's).
"""

import os
import re
from pathlib import Path

import nbformat
import pytest
from coco_data import needs_coco
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = ROOT / "lessons"
NOTEBOOKS = [path.relative_to(ROOT) for path in sorted(LESSONS_DIR.glob("*.ipynb"))]
CELL_TIMEOUT_S = 300
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _code_cells(nb):
    """(index, cell) of every code cell with some source (nbclient skips empty ones)."""
    return [
        (index, cell)
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and cell.source.strip()
    ]


def _first_error(nb):
    """(index, cell, error output) of the first code cell that has an error output."""
    for index, cell in _code_cells(nb):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                return index, cell, output
    return None


def _kernel_env():
    env = dict(os.environ)
    env["MINIMASK_LESSONS_FAST"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(ROOT), env.get("PYTHONPATH", "")) if part
    )
    return env


def _describe_failure(notebook, nb, error):
    """The failing cell's index, source and error, with the terminal colours removed."""
    found = _first_error(nb)
    if found is None:  # no error output recorded: nbclient's own message
        return f"{notebook.as_posix()}: {ANSI_ESCAPE.sub('', str(error))}"
    index, cell, output = found
    traceback = ANSI_ESCAPE.sub("", "\n".join(output.get("traceback", [])))
    return (
        f"{notebook.as_posix()}: cell {index} raised {output.ename}: {output.evalue}\n"
        f"---- cell source ----\n{cell.source}\n"
        f"---- traceback ----\n{traceback}"
    )


def _reads_real_coco(notebook):
    """Lessons that read real COCO images take the folder from MINIMASK_COCO."""
    return "MINIMASK_COCO" in (ROOT / notebook).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "notebook",
    [
        pytest.param(path, marks=needs_coco) if _reads_real_coco(path) else path
        for path in NOTEBOOKS
    ],
    ids=[path.as_posix() for path in NOTEBOOKS],
)
def test_lesson_runs(notebook):
    nb = nbformat.read(ROOT / notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(LESSONS_DIR)}},
    )
    try:
        client.execute(cwd=str(LESSONS_DIR), env=_kernel_env())
    except CellExecutionError as error:
        failure = _describe_failure(notebook, nb, error)
    else:
        return
    pytest.fail(failure, pytrace=False)  # outside `except`: no chained nbclient traceback


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.as_posix() for path in NOTEBOOKS])
def test_lesson_has_saved_outputs(notebook):
    nb = nbformat.read(ROOT / notebook, as_version=4)
    cells = _code_cells(nb)
    assert cells, f"{notebook.as_posix()} has no code cells"
    not_run = [index for index, cell in cells if cell.execution_count is None]
    assert not not_run, (
        f"{notebook.as_posix()}: code cells {not_run} have no saved outputs "
        "(execution_count is None); execute the notebook and save it with its outputs"
    )
    counts = [cell.execution_count for _, cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{notebook.as_posix()}: execution counts {counts} are not 1, 2, 3, ...: "
        "run the whole notebook once from a fresh kernel before saving it"
    )
    found = _first_error(nb)
    assert found is None, (
        f"{notebook.as_posix()}: cell {found[0]} was saved with an error output "
        f"({found[2].ename}: {found[2].evalue})"
    )
