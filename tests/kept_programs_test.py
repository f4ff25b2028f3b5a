import os
import pickle
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache as jax_compilation_cache

from aejax.engine import compile_cache, untraced


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """A fresh folder for kept programs, with JAX's own persistent cache off: another test in
    this process may have turned it on (`aejax.cli` does), and a program found there is never
    kept."""
    monkeypatch.setattr(compile_cache, "_kept_dir", tmp_path / "executables")
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    jax_compilation_cache.reset_cache()  # JAX decides once whether it uses its cache
    yield tmp_path / "executables"
    jax.config.update("jax_enable_compilation_cache", enabled)
    jax_compilation_cache.reset_cache()


def step(scale):
    def fn(state, x, key):
        noise = jax.random.normal(key, x.shape)
        return {"w": state["w"] * scale + x @ x.T, "n": state["n"] + 1}, jnp.sum(noise)

    return fn


ARGS = ({"w": jnp.ones((4, 4)), "n": jnp.zeros((), jnp.int32)}, jnp.arange(16.0).reshape(4, 4))


def run(program):
    state = jax.tree.map(jnp.copy, ARGS[0])
    return jax.device_get(program(state, ARGS[1], jax.random.key(7)))


def test_a_kept_program_is_loaded_and_computes_what_jit_does(kept, monkeypatch):
    first = compile_cache.compile_program(step(0.5), (*ARGS, jax.random.key(0)))
    assert len(list(kept.iterdir())) == 1

    def no_lowering(*_, **__):
        raise AssertionError("lowered again although the program was kept")

    monkeypatch.setattr(jax.stages.Traced, "lower", no_lowering)
    with compile_cache.count_compiles() as counted:
        again = compile_cache.compile_program(step(0.5), (*ARGS, jax.random.key(0)))
    assert (counted.requests, counted.cache_hits) == (1, 1)  # a load counts as a cache hit
    expected = jax.device_get(jax.jit(step(0.5))(*ARGS, jax.random.key(7)))
    for program in (first, again):
        jax.tree.map(np.testing.assert_array_equal, run(program), expected)


def test_a_changed_program_compiler_cpu_or_jax_version_gets_its_own_entry(kept, monkeypatch):
    compile_cache.compile_program(step(0.5), (*ARGS, jax.random.key(0)))
    changed = compile_cache.compile_program(step(0.25), (*ARGS, jax.random.key(0)))
    expected = jax.device_get(jax.jit(step(0.25))(*ARGS, jax.random.key(7)))
    jax.tree.map(np.testing.assert_array_equal, run(changed), expected)
    monkeypatch.setattr(jax, "__version__", "0.0.0")
    compile_cache.compile_program(step(0.25), (*ARGS, jax.random.key(0)))
    wider = ({"w": jnp.ones((4, 4)), "n": jnp.zeros((), jnp.int32)}, jnp.ones((4, 8)))
    compile_cache.compile_program(step(0.25), (*wider, jax.random.key(0)))
    assert len(list(kept.iterdir())) == 4
    options = {"xla_backend_optimization_level": 1}
    compile_cache.compile_program(step(0.25), (*wider, jax.random.key(0)), options=options)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    compile_cache.compile_program(step(0.25), (*wider, jax.random.key(0)))
    # Kept programs hold machine code: another instruction set must never load them.
    monkeypatch.setattr(untraced, "_host_cpu", lambda: "model name: another CPU")
    compile_cache.compile_program(step(0.25), (*wider, jax.random.key(0)))
    assert len(list(kept.iterdir())) == 7


def test_a_damaged_entry_is_named_and_compiled_afresh(kept, capsys):
    compile_cache.compile_program(step(0.5), (*ARGS, jax.random.key(0)))
    (entry,) = kept.iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    program = compile_cache.compile_program(step(0.5), (*ARGS, jax.random.key(0)))
    assert "unreadable" in capsys.readouterr().err
    expected = jax.device_get(jax.jit(step(0.5))(*ARGS, jax.random.key(7)))
    jax.tree.map(np.testing.assert_array_equal, run(program), expected)
    assert len(entry.read_bytes()) > 100  # rewritten whole
    compile_cache.compile_program(step(0.5), (*ARGS, jax.random.key(0)))
    assert capsys.readouterr().err == ""  # warned about once, not on every later run


def test_donated_arguments_are_donated(kept):
    program = compile_cache.compile_program(step(0.5), (*ARGS, jax.random.key(0)), (0,))
    state = jax.tree.map(jnp.copy, ARGS[0])
    program(state, ARGS[1], jax.random.key(1))
    assert state["w"].is_deleted()


def test_an_unwritable_folder_still_compiles(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(compile_cache, "_kept_dir", tmp_path / "file" / "exported")
    program = compile_cache.compile_program(step(0.5), (*ARGS, jax.random.key(0)))
    expected = jax.device_get(jax.jit(step(0.5))(*ARGS, jax.random.key(7)))
    jax.tree.map(np.testing.assert_array_equal, run(program), expected)


def test_a_program_that_cannot_be_serialized_is_compiled_as_usual(kept):
    seen = []

    def with_callback(state, x, key):
        jax.debug.callback(lambda n: seen.append(int(n)), state["n"])
        return step(0.5)(state, x, key)

    program = compile_cache.compile_program(with_callback, (*ARGS, jax.random.key(0)))
    expected = jax.device_get(jax.jit(step(0.5))(*ARGS, jax.random.key(7)))
    jax.tree.map(np.testing.assert_array_equal, run(program), expected)
    assert seen == [0] and not list(kept.glob("*.executable"))


ON_ANOTHER_DEVICE = """
import sys
from pathlib import Path
import jax, jax.numpy as jnp
from aejax.engine import compile_cache, untraced
compile_cache.keep_programs(Path(sys.argv[1]))
def fn(s, x):
    return {"w": s["w"] * 2 + x}, jnp.sum(x)
second = jax.devices()[1]
for _ in range(2):  # compiled and kept, then loaded
    args = jax.device_put(({"w": jnp.ones(3)}, jnp.arange(3.0)), second)
    state, total = compile_cache.compile_program(fn, args, (0,))(*args)
    print(list(state["w"].devices()) == [second], state["w"].tolist(), float(total))
spread = (jax.device_put({"w": jnp.ones(3)}, jax.devices()[0]), jnp.arange(3.0, device=second))
print(len(list(Path(sys.argv[1]).iterdir())), compile_cache._device(spread))
"""


def test_a_kept_program_runs_on_the_device_its_arguments_are_on(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "2"}
    command = [sys.executable, "-c", ON_ANOTHER_DEVICE, str(tmp_path / "kept")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    first, loaded, kept = done.stdout.splitlines()
    assert first == loaded == "True [2.0, 3.0, 4.0] 3.0"
    assert kept == "1 None"  # arguments on two devices: not a one-device program, not kept


THROUGH_JAX_CACHE = """
import sys
from pathlib import Path
import jax, jax.numpy as jnp
from aejax.engine import compile_cache, untraced
compile_cache.enable(sys.argv[1])  # JAX's cache there, kept programs in executables/
def fn(x, y):
    return jnp.tanh(x @ y + 1.0).sum(0)
args = (jnp.ones((8, 16)), jnp.ones((16, 4)))
first = compile_cache.compile_program(fn, args)(*args).tolist()
again = compile_cache.compile_program(fn, args)(*args).tolist()  # JAX may hand back the first
assert first == again
print(first)
"""


def test_a_program_found_in_jaxs_cache_is_not_kept_but_runs(tmp_path):
    def run(*_):
        command = [sys.executable, "-c", THROUGH_JAX_CACHE, str(tmp_path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout, list((tmp_path / "executables").iterdir())

    fresh, kept = run()
    assert len(kept) == 1  # compiled afresh, and kept
    kept[0].unlink()  # as after an upgrade from a version that did not keep programs
    from_jax_cache, kept = run()
    # JAX loaded it from its own cache: such an executable serializes without its kernels, so
    # keeping it would leave an entry that loads and then fails to run.
    assert kept == [] and from_jax_cache == fresh
    assert run() == (fresh, [])  # and it still runs, from JAX's cache


def test_nested_counters_each_end_cleanly_even_with_equal_counts():
    # Both start at zero: removing the inner one by equality once removed the outer one instead.
    x = jnp.ones(3)
    with compile_cache.count_compiles() as outer:
        with compile_cache.count_compiles() as inner:
            assert inner.requests == outer.requests == 0
        jax.jit(lambda x: x * 3.0).lower(x).compile()
    assert outer.requests == 1 and inner.requests == 0


class Traces:
    """`step(scale)` that counts how often JAX traced it: a program found by its recipe is not."""

    def __init__(self, scale=0.5):
        self.count, self.inner = 0, step(scale)

    def __call__(self, state, x, key):
        self.count += 1
        return self.inner(state, x, key)


def by_recipe(recipe: str, scale=0.5):
    fn = Traces(scale)
    program = compile_cache.compile_program(fn, (*ARGS, jax.random.key(0)), (0,), recipe=recipe)
    return fn.count, program


def test_a_program_with_a_recipe_loads_untraced_and_computes_what_jit_does(kept):
    assert by_recipe("stage a")[0] == 1  # compiled, kept with its output structure
    with compile_cache.count_compiles() as counted:
        traces, program = by_recipe("stage a")
    assert traces == 0 and (counted.requests, counted.cache_hits) == (1, 1)
    expected = jax.device_get(jax.jit(step(0.5))(*ARGS, jax.random.key(7)))
    jax.tree.map(np.testing.assert_array_equal, run(program), expected)
    state = jax.tree.map(jnp.copy, ARGS[0])
    program(state, ARGS[1], jax.random.key(1))
    assert state["w"].is_deleted()  # still donated
    # The program is kept once, under its trace's key; the recipe's entry names it.
    assert sorted(p.suffix for p in kept.iterdir()) == [".executable", ".recipe"]


def test_whatever_shapes_a_program_changes_its_recipe_key(kept, monkeypatch, tmp_path):
    """Never a stale program: another recipe (a model width, a loss), another aejax source file,
    another JAX flag or other argument shapes are each traced and compiled afresh."""
    assert by_recipe("hidden=32")[0] == 1
    traces, program = by_recipe("hidden=24", scale=0.25)  # what a changed config reads as
    assert traces == 1
    expected = jax.device_get(jax.jit(step(0.25))(*ARGS, jax.random.key(7)))
    jax.tree.map(np.testing.assert_array_equal, run(program), expected)
    assert by_recipe("hidden=32/loss=bce")[0] == 1
    package = tmp_path / "aejax"
    shutil.copytree(untraced.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(untraced, "PACKAGE", package)
    assert by_recipe("hidden=32")[0] == 0  # the same source under another folder
    with (package / "model" / "objectives.py").open("a") as source:
        source.write("\n# changed\n")
    assert by_recipe("hidden=32")[0] == 1
    with jax.default_matmul_precision("highest"):
        assert by_recipe("hidden=32")[0] == 1
    assert by_recipe("hidden=32")[0] == 0
    wider = (*ARGS[:1], jnp.ones((4, 8)), jax.random.key(0))
    fn = Traces()
    compile_cache.compile_program(fn, wider, (0,), recipe="hidden=32")
    assert fn.count == 1


def test_a_program_kept_by_an_earlier_version_is_found_by_its_trace_and_then_untraced(kept):
    """After an upgrade (another aejax source: another recipe key) a program that did not change
    is found by its trace, not compiled again, and from then on without the trace."""
    by_recipe("stage a")
    for entry in kept.glob("*.recipe"):
        entry.unlink()  # as if kept by a version whose recipe keys differ
    with compile_cache.count_compiles() as counted:
        traces, program = by_recipe("stage a")
    assert traces == 1 and counted.compiled == 0
    assert by_recipe("stage a")[0] == 0
    expected = jax.device_get(jax.jit(step(0.5))(*ARGS, jax.random.key(7)))
    jax.tree.map(np.testing.assert_array_equal, run(program), expected)


def test_outputs_that_cannot_be_recorded_are_kept_by_their_trace(kept):
    def with_function_in_output(state, x, key):
        new, total = step(0.5)(state, x, key)
        return jax.tree_util.Partial(jnp.add, new["w"]), total  # a function: not picklable

    args = (*ARGS, jax.random.key(0))
    compile_cache.compile_program(with_function_in_output, args, recipe="stage a")
    assert [p.suffix for p in kept.iterdir()] == [".executable"]  # by its trace, as without
    with compile_cache.count_compiles() as counted:
        compile_cache.compile_program(with_function_in_output, args, recipe="stage a")
    assert counted.cache_hits == 1


def test_a_damaged_recipe_entry_is_written_afresh(kept):
    by_recipe("stage a")
    (entry,) = kept.glob("*.recipe")
    for damage in (b"not a pickle", pickle.dumps(("../elsewhere.executable", None))):
        entry.write_bytes(damage)
        traces, program = by_recipe("stage a")
        assert traces == 1 and entry.read_bytes() != damage
    expected = jax.device_get(jax.jit(step(0.5))(*ARGS, jax.random.key(7)))
    jax.tree.map(np.testing.assert_array_equal, run(program), expected)
