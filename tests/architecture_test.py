"""The package keeps its floor plan (docs/architecture.md): wings import only the wings below them,
no module imports another's private name, and the imports form no circle."""

import ast
from pathlib import Path

from support import REPO

PACKAGE = REPO / "aejax"
# A module belongs to the wing of its longest matching prefix; anything else is the top floor
# (the stages, evaluation, the command line, the research toolkit, the public API).
WINGS = {
    "aejax.errors": "base",
    "aejax.specs": "base",
    "aejax.config": "base",
    "aejax.contracts": "base",
    "aejax.files": "base",
    "aejax.data": "data",
    "aejax.figures": "figures",
    "aejax.model": "model",
    "aejax.engine": "engine",
    "aejax.run": "run",
}
MAY_IMPORT = {
    "base": {"base"},
    "data": {"base", "data"},
    "figures": {"base", "figures"},
    "model": {"base", "data", "model"},  # never the engine: tasks reach it as metrics functions
    "engine": {"base", "data", "engine"},  # never the model
    "run": {"base", "data", "figures", "model", "engine", "run"},
    "top": {"base", "data", "figures", "model", "engine", "run", "top"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def wing(module: str) -> str:
    matches = [prefix for prefix in WINGS if module == prefix or module.startswith(prefix + ".")]
    return WINGS[max(matches, key=len)] if matches else "top"


def imports(tree: ast.Module, known: set[str]) -> list[tuple[str, str]]:
    """``(module, name)`` for every aejax import anywhere in `tree` (name: None for a module)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("aejax")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aejax"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append((submodule, None) if submodule in known else (node.module, alias.name))
    return found


def graph() -> dict[str, set[str]]:
    """Each module's aejax imports; the package root (the public API, importing every wing)
    is left out as a target: Python runs it first, whatever a module imports."""
    trees = modules()
    known = set(trees)
    return {m: {t for t, _ in imports(tree, known) if t != "aejax"} for m, tree in trees.items()}


def test_the_wings_are_found():
    wings = {wing(m) for m in modules()}
    assert wings == set(MAY_IMPORT)


def test_no_wing_imports_a_higher_one():
    wrong = [
        f"{m} ({wing(m)}) imports {t} ({wing(t)})"
        for m, targets in graph().items()
        for t in sorted(targets)
        if wing(t) not in MAY_IMPORT[wing(m)]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_a_private_name_of_another():
    trees = modules()
    known, wrong = set(trees), []
    for name, tree in trees.items():
        private = [f"{m}.{n}" for m, n in imports(tree, known) if n and n.startswith("_")]
        wrong += [f"{name} imports {p}" for p in private]
        aliases = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aejax")
            for alias in node.names
            if f"{node.module}.{alias.name}" in known
        }
        wrong += [
            f"{name} uses {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ]
    assert not wrong, "\n".join(wrong)


def test_the_imports_form_no_circle():
    edges, circles = graph(), []

    def visit(module, path):
        if module in path:
            circles.append(" -> ".join(path[path.index(module) :] + [module]))
            return
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, path + [module])
        done.add(module)

    done: set[str] = set()
    for module in sorted(edges):
        visit(module, [])
    assert not circles, "\n".join(circles)


def test_a_wrong_arrow_would_be_caught(tmp_path):
    # The checks above see the code as written: here one line of a lower wing importing a
    # higher one is found by the same functions.
    tree = ast.parse("from aejax.run import checkpoint\nfrom aejax.engine.train import _x\n")
    known = {"aejax.run.checkpoint", "aejax.engine.train"}
    found = imports(tree, known)
    assert ("aejax.run.checkpoint", None) in found and ("aejax.engine.train", "_x") in found
    assert wing("aejax.run.checkpoint") not in MAY_IMPORT[wing("aejax.data.download")]
    assert wing("aejax.engine.train") not in MAY_IMPORT[wing("aejax.model.objectives")]


def test_the_public_names_of_earlier_versions_still_import():
    import aejax

    earlier = """Autoencoder CheckpointError Classifier DataConfig DataError Dataset Decoder
    DeviceData EarlyStoppingConfig Encoder EncoderMismatchError FinetuneConfig ModelConfig
    ObjectiveConfig PipelineResult PretrainConfig Split StageConfig StageResult
    StateDictMismatchError TorchMissingError TrainConfig TrainingDivergedError
    TrainingInterrupted TransferConfig UserError WorkdirBusyError data_mesh evaluate
    evaluate_stage finetune finetune_config from_torch_state_dict load_dataset
    load_pretrained_encoder load_stage make_autoencoder make_classifier normalize pretrain
    pretrain_config read_idx run_pipeline to_device to_torch_state_dict torch_adam
    transplant_encoder""".split()
    assert set(earlier) <= set(aejax.__all__)
    assert all(callable(getattr(aejax, name)) for name in aejax.__all__)
