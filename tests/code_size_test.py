"""The package stays readable: short functions and modules of a size one can hold in one's head."""

import ast

from support import REPO

PACKAGE = REPO / "aejax"
MAX_FUNCTION_LINES = 40  # from `def` to the last line of the body; decorators not counted
MAX_MODULE_LINES = 300


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _name(path) -> str:
    return str(path.relative_to(REPO))


def test_the_package_is_found():
    names = {_name(p) for p in _modules()}
    assert {"aejax/__init__.py", "aejax/engine/train.py", "aejax/research/multi_seed.py"} <= names


def test_no_function_is_longer_than_40_lines():
    too_long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{_name(path)}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long, "functions over 40 lines:\n" + "\n".join(too_long)


def test_no_module_is_longer_than_300_lines():
    too_long = []
    for path in _modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{_name(path)} ({lines} lines)")
    assert not too_long, "modules over 300 lines:\n" + "\n".join(too_long)
