"""The lessons' exercises: a stub in a notebook, a reference solution, and a checker.

An exercise ``NN.k`` (lesson NN, exercise k) has three parts:

- **the stub**, a code cell of lesson NN whose first line is ``# Exercise NN.k: <title>``.
  It defines the names the exercise asks for, each body a ``raise NotImplementedError``
  for the student to replace, and imports what it uses, so that it runs on its own;
- **the check cell** after it, ``check("NN.k", globals())``, which prints
  ``exercise NN.k (<title>): passed`` or ``exercise NN.k (<title>): not yet: <what is
  wrong>``. It never raises: a lesson runs from top to bottom before its exercises are done;
- **the checker**, a function in ``lessons/exercises/lessonNN.py`` registered with
  ``@exercise("NN.k", "<title>", "name", ...)``. It receives the student's objects by
  name, compares them with minimask and with a reference (NumPy written out, finite
  differences, a hand computation; its docstring names which and the tolerance), and
  raises ``Wrong("...")`` saying what is wrong. The reference solution of every exercise
  of lesson NN is in ``lessons/solutions/lessonNN.py``.

``python lessons/check.py`` runs every checker against the reference solutions (all must
pass) and against the blank stubs (all must fail, which shows each checker can fail).
"""

import importlib
import traceback

REGISTRY = {}  # "NN.k" -> Exercise


class Wrong(Exception):
    """A checker's verdict: the student's code runs but gives the wrong answer."""


class Exercise:
    def __init__(self, key, title, names, checker):
        self.key, self.title, self.names, self.checker = key, title, names, checker

    def run(self, namespace):
        """(passed, message) for the objects ``namespace`` holds under ``self.names``."""
        missing = [name for name in self.names if name not in namespace]
        if missing:
            return False, "define " + ", ".join(missing)
        try:
            self.checker(**{name: namespace[name] for name in self.names})
        except NotImplementedError as error:
            where = traceback.extract_tb(error.__traceback__)[-1]
            return False, f"{where.name} still raises NotImplementedError: write it"
        except Wrong as wrong:
            return False, str(wrong)
        except Exception as error:  # the student's code failed: say where
            frame = traceback.extract_tb(error.__traceback__)[-1]
            return False, f"your code raised {type(error).__name__}: {error} (in {frame.name})"
        return True, "passed"


def exercise(key, title, *names):
    """Register the decorated checker as exercise ``key``, taking the objects ``names``."""

    def register(checker):
        REGISTRY[key] = Exercise(key, title, names, checker)
        return checker

    return register


def load(key):
    """The Exercise ``key`` ("NN.k"), importing lesson NN's checkers on first use."""
    importlib.import_module(f"exercises.lesson{key.split('.')[0]}")
    if key not in REGISTRY:
        raise KeyError(f"no exercise {key}")
    return REGISTRY[key]


def check(key, namespace):
    """Check exercise ``key`` against the objects in ``namespace`` (a notebook's
    ``globals()``): print the verdict, return True when it passed. Never raises."""
    entry = load(key)
    passed, message = entry.run(namespace)
    verdict = "passed" if passed else f"not yet: {message}"
    print(f"exercise {key} ({entry.title}): {verdict}")
    return passed
