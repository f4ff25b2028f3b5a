"""The wheel holds what an installed aejax needs (every module, the figure helper, the type marker,
the licence, the `aejax` command), and installed on its own it runs: `aejax --help`,
`python -m aejax`."""

import inspect
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import aejax
from support import REPO

SUBPACKAGES = ("data", "model", "engine", "run", "figures", "research")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Built from a copy: setuptools writes build/ and *.egg-info/ beside the sources it builds.
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "aejax", source / "aejax", ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run([*build, "-w", str(out), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return next(out.glob("aejax-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The wheel installed into a folder of its own (its dependencies are this environment's)."""
    target = tmp_path_factory.mktemp("site")
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target)]
    done = subprocess.run([*install, str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return target


def test_the_wheel_holds_every_module_the_helper_the_marker_and_the_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(REPO)) for p in (REPO / "aejax").rglob("*.py")}
    assert modules <= names
    assert {"aejax/py.typed", "aejax/figures/helper.py"} <= names
    assert {f"aejax/{sub}/__init__.py" for sub in SUBPACKAGES} <= names
    dist_info = f"aejax-{aejax.__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "aejax = aejax.commands:main" in entry_points


def _run(installed, *command):
    # The installed copy first on the path, and run away from the checkout.
    env = {**os.environ, "PYTHONPATH": str(installed), "JAX_PLATFORMS": "cpu"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=installed.parent)


def test_the_installed_command_lists_its_subcommands_and_their_defaults(installed):
    listing = _run(installed, str(installed / "bin" / "aejax"), "--help")
    assert listing.returncode == 0, listing.stderr
    for name in ("pretrain", "finetune", "pipeline", "evaluate", "study", "find-data", "inspect"):
        assert f"\n  {name} " in listing.stdout
    flags = _run(installed, sys.executable, "-m", "aejax", "pretrain", "--help")
    assert flags.returncode == 0, flags.stderr
    assert flags.stdout.startswith("usage: aejax pretrain")
    assert "training epochs (default: 10)" in flags.stdout
    version = _run(installed, sys.executable, "-m", "aejax", "--version")
    assert version.returncode == 0 and version.stdout == f"aejax {aejax.__version__}\n"
    where = _run(installed, sys.executable, "-c", "import aejax; print(aejax.__file__)")
    assert where.stdout.strip().startswith(str(installed))


def test_an_unknown_command_is_one_line_and_exit_2(installed):
    done = _run(installed, sys.executable, "-m", "aejax", "train")
    assert done.returncode == 2
    assert done.stderr == (
        "error: no command 'train'; the commands are pretrain, finetune, pipeline, evaluate, "
        "study, find-data, inspect\n"
    )


def unannotated(name: str, function) -> list[str]:
    """`name(parameter)` for each parameter of `function` without a type, `name -> ?` when its
    return has none."""
    signature = inspect.signature(function)
    missing = [
        f"{name}({p.name})"
        for p in signature.parameters.values()
        if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty
    ]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append(f"{name} -> ?")
    return missing


def test_the_public_api_is_typed_throughout():
    missing = []
    for name in aejax.__all__:
        public = getattr(aejax, name)
        if inspect.isclass(public) and not issubclass(public, BaseException):
            for method, function in vars(public).items():
                if inspect.isfunction(function) and not method.startswith("_"):
                    missing += unannotated(f"{name}.{method}", function)
        elif inspect.isfunction(public):
            missing += unannotated(name, public)
    assert not missing, ", ".join(missing)
