"""Mutation testing of the modules whose bugs change results, with cosmic-ray.

Each module's mutants are applied, one at a time, to a clean clone of the repository and run
against that module's fast test files; a mutant is killed when they fail (or time out). The
survivors, less those recorded as equivalent in `benchmarks/mutation_equivalent.json` (a change
that cannot alter behaviour, with the reason), are written to
`benchmarks/results/<name>.{json,md}`.

    pip install -e '.[mutation]'
    python benchmarks/mutation.py                              # every module: hours on 2 cores
    python benchmarks/mutation.py --modules splits,transplant  # a few
    python benchmarks/mutation.py --modules splits --update    # again, keeping the others
    python benchmarks/mutation.py --modules splits --update --recheck  # only its survivors

The operators are the one-line bugs people write: an arithmetic or comparison operator swapped
for its neighbour, a number off by one, a condition negated or dropped, True/False, and/or,
break/continue, a loop that never runs, an exception handler that catches nothing.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
EQUIVALENT = REPO / "benchmarks" / "mutation_equivalent.json"
# Each module's last cosmic-ray session and the source it mutated, for --recheck.
SESSIONS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aejax-mutation"
FAST = "-x -q -p no:cacheprovider -n 0"

# Each module and the fast test files that should notice its bugs.
MODULES = {
    "train": ("aejax/engine/train.py", ("tests/train_test.py",)),
    "epochs": ("aejax/engine/epochs.py", ("tests/train_test.py",)),
    "objectives": ("aejax/model/objectives.py", ("tests/objectives_test.py",)),
    "models": ("aejax/model/models.py", ("tests/models_test.py", "tests/objectives_test.py")),
    "data": ("aejax/data/datasets.py", ("tests/data_test.py", "tests/contract_test.py")),
    "splits": ("aejax/data/splits.py", ("tests/splits_test.py",)),
    "transplant": ("aejax/model/transplant.py", ("tests/transplant_test.py",)),
    "stage_loop": (
        "aejax/run/stage_loop.py",
        ("tests/stages_test.py", "tests/early_stopping_test.py", "tests/observe_test.py"),
    ),
    "checkpoint": ("aejax/run/checkpoint.py", ("tests/checkpoint_test.py",)),
    "saved_step": ("aejax/run/saved_step.py", ("tests/checkpoint_test.py",)),
    "early_stopping": ("aejax/run/early_stopping.py", ("tests/early_stopping_test.py",)),
    "interop": ("aejax/model/interop.py", ("tests/interop_test.py",)),
    "generation": ("aejax/model/generation.py", ("tests/generation_test.py",)),
    "label_budget": ("aejax/research/label_budget.py", ("tests/label_budget_test.py",)),
    "multi_seed": ("aejax/research/multi_seed.py", ("tests/multi_seed_test.py",)),
}
KEPT_OPERATORS = (
    r"ReplaceBinaryOperator_(Add_Sub|Sub_Add|Mul_Div|Div_Mul|FloorDiv_Div|Mod_FloorDiv|Pow_Mul)",
    r"ReplaceComparisonOperator_(Eq_NotEq|NotEq_Eq|Lt_LtE|LtE_Lt|Gt_GtE|GtE_Gt|Is_IsNot|IsNot_Is)",
    r"ReplaceUnaryOperator_(USub_UAdd|Delete_Not)",
    r"AddNot|ReplaceTrueWithFalse|ReplaceFalseWithTrue|ReplaceAndWithOr|ReplaceOrWithAnd",
    r"ReplaceBreakWithContinue|ReplaceContinueWithBreak|NumberReplacer|ZeroIterationForLoop",
    r"ExceptionReplacer",
)


def config_toml(module: str, tests: tuple[str, ...], timeout: float) -> str:
    kept = "|".join(KEPT_OPERATORS)
    command = f"{sys.executable} -m pytest {FAST} {' '.join(tests)}"
    return "\n".join(
        [
            "[cosmic-ray]",
            f'module-path = "{module}"',
            f"timeout = {timeout:.0f}",
            "excluded-modules = []",
            f"test-command = {json.dumps(command)}",
            "[cosmic-ray.distributor]",
            'name = "local"',
            "[cosmic-ray.filters.operators-filter]",
            f"exclude-operators = [{json.dumps(f'^(?!core/({kept})$)')}]",
            "",
        ]
    )


def tool(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    found = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"error: {' '.join(args[:2])} failed: {found.stderr.strip()[-500:]}")
    return found


def mutate(name: str, clone: Path, work: Path, env: dict, recheck: bool = False) -> dict:
    """Run one module's mutants (with `recheck`, only those that survived its last run); its
    counts and its surviving mutants. The session is kept for a later recheck."""
    module, tests = MODULES[name]
    started = time.perf_counter()
    baseline = subprocess.run(
        [sys.executable, "-m", "pytest", *FAST.split(), *tests], cwd=clone, env=env
    )
    if baseline.returncode != 0:
        raise SystemExit(f"error: the tests of {name} fail before any mutation")
    baseline_s = time.perf_counter() - started
    config, session = work / f"{name}.toml", work / f"{name}.sqlite"
    config.write_text(config_toml(module, tests, timeout=3 * baseline_s + 60))
    bin_dir = Path(sys.executable).parent
    if recheck:
        _reopen(name, clone / module, session)
    else:
        tool(str(bin_dir / "cosmic-ray"), "init", str(config), str(session), cwd=clone, env=env)
        tool(str(bin_dir / "cr-filter-operators"), str(session), str(config), cwd=clone, env=env)
        tool(str(bin_dir / "cr-filter-pragma"), str(session), cwd=clone, env=env)
    tool(str(bin_dir / "cosmic-ray"), "exec", str(config), str(session), cwd=clone, env=env)
    SESSIONS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(session, SESSIONS / f"{name}.sqlite")
    shutil.copyfile(clone / module, SESSIONS / f"{name}.py")
    dumped = tool(str(bin_dir / "cosmic-ray"), "dump", str(session), cwd=clone, env=env)
    return summarise(name, module, clone, dumped.stdout, time.perf_counter() - started)


def _reopen(name: str, source: Path, session: Path) -> None:
    """`session` as the module's kept one, with the results of its survivors not known to be
    equivalent cleared, so that `cosmic-ray exec` runs them again (against today's tests)."""
    kept, mutated = SESSIONS / f"{name}.sqlite", SESSIONS / f"{name}.py"
    if not kept.exists():
        raise SystemExit(f"error: no kept session for {name}; run it without --recheck first")
    if not mutated.exists() or mutated.read_bytes() != source.read_bytes():
        raise SystemExit(f"error: {MODULES[name][0]} changed since its mutants were made; run it")
    shutil.copyfile(kept, session)
    lines = source.read_text().splitlines()
    with sqlite3.connect(session) as db:
        survivors = db.execute(
            "SELECT r.job_id, s.start_pos_row, s.definition_name, r.diff FROM work_results r"
            " JOIN mutation_specs s ON s.job_id = r.job_id WHERE r.test_outcome = 'SURVIVED'"
        ).fetchall()
        for job, line_no, definition, diff in survivors:  # equivalent ones: not again
            found = {"code": lines[line_no - 1].strip(), "mutant": _mutated_line(diff or "")}
            if not equivalence(name, {**found, "definition": definition}):
                db.execute("DELETE FROM work_results WHERE job_id = ?", (job,))


def summarise(name: str, module: str, clone: Path, dump: str, seconds: float) -> dict:
    """Counts of a module's mutants by outcome, and each survivor not known to be equivalent."""
    lines = (clone / module).read_text().splitlines()
    counts = {"killed": 0, "survived": 0, "equivalent": 0, "skipped": 0}
    survivors, equivalents = [], []
    for line in dump.splitlines():
        item, result = json.loads(line)
        mutation = item["mutations"][0]
        outcome = (result or {}).get("test_outcome")
        if result is None or result.get("worker_outcome") == "skipped" or outcome is None:
            counts["skipped"] += 1
            continue
        line_no = mutation["start_pos"][0]
        found = {
            "line": line_no,
            "operator": mutation["operator_name"].removeprefix("core/"),
            "code": lines[line_no - 1].strip(),
            "mutant": _mutated_line(result.get("diff") or ""),
            "definition": mutation.get("definition_name"),
        }
        reason = equivalence(name, found)
        if outcome == "killed":
            counts["killed"] += 1
        elif reason:
            counts["equivalent"] += 1
            equivalents.append({**found, "reason": reason})
        else:
            counts["survived"] += 1
            survivors.append(found)
    tried = counts["killed"] + counts["survived"]
    score = counts["killed"] / tried if tried else None
    return {
        "module": name,
        "path": module,
        **counts,
        "score": score,
        "seconds": round(seconds),
        "survivors": survivors,
        "equivalents": equivalents,
    }


def _mutated_line(diff: str) -> str:
    """The line as the mutant has it (the diff's added line), stripped."""
    added = [x[1:] for x in diff.splitlines() if x.startswith("+") and not x.startswith("+++")]
    return " ".join(x.strip() for x in added)


@functools.cache  # read once per run, not once per mutant
def _equivalents() -> tuple[dict, ...]:
    return tuple(json.loads(EQUIVALENT.read_text())) if EQUIVALENT.exists() else ()


def equivalence(module: str, found: dict) -> str | None:
    """Why the mutant `found` (its code, mutant line and definition) cannot change a result, if
    it is recorded as equivalent. An entry naming a `definition` (the class or function that
    holds the line) applies there only: the same line may mean other things elsewhere."""
    for e in _equivalents():
        same = (e["module"], e["code"], e["mutant"]) == (module, found["code"], found["mutant"])
        if same and e.get("definition", found.get("definition")) == found.get("definition"):
            return e["reason"]
    return None


def markdown(result: dict) -> str:
    rows = [
        "| module | killed | survived | equivalent | score | minutes | commit | host |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in result["modules"]:
        score = "n/a" if m["score"] is None else f"{100 * m['score']:.1f} %"
        rows.append(
            f"| {m['module']} | {m['killed']} | {m['survived']} | {m['equivalent']} | {score} | "
            f"{m['seconds'] / 60:.1f} | {m['commit'][:12]} | {m['host']} |"
        )
    survivors = [
        f"- `{m['path']}:{s['line']}` {s['operator']}: `{s['code']}` → `{s['mutant']}`"
        for m in result["modules"]
        for s in m["survivors"]
    ]
    total = result["total"]
    return "\n".join(
        [
            "# Mutation testing (cosmic-ray)",
            "",
            f"All modules: {total['killed']} of {total['killed'] + total['survived']} "
            f"non-equivalent mutants killed ({100 * total['score']:.1f} %), "
            f"{total['equivalent']} equivalent. Last run: `{result['command']}`.",
            "",
            *rows,
            "",
            "## Surviving mutants",
            "",
            *(survivors or ["None."]),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", default=",".join(MODULES), help="comma-separated")
    parser.add_argument("--name", default="mutation", help="results file name")
    parser.add_argument(
        "--update", action="store_true", help="keep the other modules' results in the file"
    )
    parser.add_argument(
        "--reclassify",
        action="store_true",
        help="run nothing: move survivors since recorded as equivalent out of the results",
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run only the mutants that survived each module's last run (its module unchanged)",
    )
    args = parser.parse_args(argv)
    if args.reclassify:
        print(json.dumps(reclassify(args.name)))
        return
    names = [n.strip() for n in args.modules.split(",")]
    if unknown := [n for n in names if n not in MODULES]:
        parser.error(f"unknown modules {unknown}; known: {', '.join(MODULES)}")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="aejax-mutation-") as tmp:
        clone, work = Path(tmp) / "repo", Path(tmp)
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "PYTHONPATH": str(clone),  # scripts the tests start import the mutated clone
            "XDG_CACHE_HOME": str(work / "cache"),  # mutants' programs stay out of yours
        }
        first = True
        for name in names:
            print(f"{name}: mutating {MODULES[name][0]}", file=sys.stderr, flush=True)
            found = {**mutate(name, clone, work, env, args.recheck), "commit": commit}
            found["host"] = _host()
            if args.recheck:  # the time is the first run's and the recheck's together
                found["seconds"] += _previous(args.name, name).get("seconds", 0)
            # Each module is written as soon as it is done: a run cut short keeps what it finished.
            total = record(found, args.name, keep=args.update or not first, argv=argv)
            first = False
            print(f"{name}: {found['survived']} survived", file=sys.stderr, flush=True)
    print(json.dumps(total))


def record(module: dict, name: str, keep: bool, argv: list[str] | None) -> dict:
    """Merge one module's result into `<name>.{json,md}` (under a lock: runs may go in parallel)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    with open(RESULTS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if keep and path.exists() else {"modules": []}
        kept = [m for m in old["modules"] if m["module"] != module["module"]]
        modules = sorted(kept + [module], key=lambda m: list(MODULES).index(m["module"]))
        result = {
            "command": "python benchmarks/mutation.py " + " ".join(argv or sys.argv[1:]),
            "total": _total(modules),
            "modules": modules,
        }
        path.write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(markdown(result))
    return result["total"]


def _previous(results: str, name: str) -> dict:
    """Module `name`'s entry in `<results>.json`, or {}."""
    path = RESULTS / f"{results}.json"
    modules = json.loads(path.read_text())["modules"] if path.exists() else []
    return next((m for m in modules if m["module"] == name), {})


def reclassify(name: str) -> dict:
    """Apply `mutation_equivalent.json` to the survivors already in `<name>.json`."""
    path = RESULTS / f"{name}.json"
    result = json.loads(path.read_text())
    for m in result["modules"]:
        still = []
        for s in m["survivors"]:
            reason = equivalence(m["module"], s)
            if reason:
                m["equivalents"].append({**s, "reason": reason})
            else:
                still.append(s)
        m["survived"], m["survivors"] = len(still), still
        m["equivalent"] = len(m["equivalents"])
        tried = m["killed"] + m["survived"]
        m["score"] = m["killed"] / tried if tried else None
    result["total"] = _total(result["modules"])
    path.write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(result))
    return result["total"]


def _total(modules: list[dict]) -> dict:
    killed, survived = (sum(m[k] for m in modules) for k in ("killed", "survived"))
    return {
        "killed": killed,
        "survived": survived,
        "equivalent": sum(m["equivalent"] for m in modules),
        "score": killed / (killed + survived) if killed + survived else None,
    }


def _host() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{os.cpu_count()} cores of {model}"


if __name__ == "__main__":
    main()
