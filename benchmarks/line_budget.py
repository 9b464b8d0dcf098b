"""The package's line budget: lines per file and per function, measured, not enforced.

    python benchmarks/line_budget.py [ROOT]        (ROOT: a checkout, default this one)

Prints the files of ``minimask/`` over 400 lines and the functions over 80 lines (the
targets docs/design.md sets), then a summary per top-level folder: files, lines, the
largest file and the longest function. A function's length runs from its ``def`` line to
its last line, docstring included (``ast``'s ``lineno`` and ``end_lineno``).
"""

import ast
import pathlib
import sys

FILE_TARGET = 400
FUNCTION_TARGET = 80


def functions(tree):
    """(qualified name, lines) of every function and method in a module's syntax tree."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return found


def measure(root):
    """{path: (lines, [(function, lines), ...])} for every .py file under root/minimask."""
    table = {}
    for path in sorted((root / "minimask").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        table[path.relative_to(root).as_posix()] = (
            len(text.splitlines()),
            functions(ast.parse(text)),
        )
    return table


def folder_of(path):
    parts = path.split("/")
    return "/".join(parts[:2]) + "/" if len(parts) > 2 else path


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[1])
    table = measure(root.resolve())
    big_files = [(p, n) for p, (n, _) in table.items() if n > FILE_TARGET]
    long_functions = [
        (p, f, n) for p, (_, fs) in table.items() for f, n in fs if n > FUNCTION_TARGET
    ]
    print(f"files over {FILE_TARGET} lines: {len(big_files)}")
    for path, lines in sorted(big_files, key=lambda item: -item[1]):
        print(f"  {lines:5d}  {path}")
    print(f"functions over {FUNCTION_TARGET} lines: {len(long_functions)}")
    for path, name, lines in sorted(long_functions, key=lambda item: -item[2]):
        print(f"  {lines:5d}  {path}:{name}")
    print("\n| folder | files | lines | largest file | longest function |")
    print("|---|---:|---:|---|---|")
    folders = {}
    for path, (lines, fs) in table.items():
        folders.setdefault(folder_of(path), []).append((path, lines, fs))
    for folder, entries in sorted(folders.items()):
        largest = max(entries, key=lambda e: e[1])
        longest = max(
            ((p, f, n) for p, _, fs in entries for f, n in fs), key=lambda e: e[2], default=None
        )
        longest_text = "-" if longest is None else f"{longest[1]} ({longest[2]})"
        print(
            f"| {folder} | {len(entries)} | {sum(e[1] for e in entries)} | "
            f"{largest[0].rsplit('/', 1)[-1]} ({largest[1]}) | {longest_text} |"
        )
    total = sum(n for n, _ in table.values())
    print(f"\n{len(table)} files, {total} lines")


if __name__ == "__main__":
    main()
