"""``scripts/pipeline.py`` with a timer around each step a run takes besides its epochs.

    python benchmarks/timed_pipeline.py TIMES.json PIPELINE-FLAGS...

Runs the pipeline exactly as the script does, each step below wrapped in a wall-clock timer, and
writes TIMES.json: seconds per step, the imports, the whole of ``main`` and the wall-clock moment
it returned (whoever started the process measures its exit from there). A step called while
another timed step runs is counted in the outer one, so the steps add up to at most ``main``;
what lies between them is ``main`` less their sum. `fixed_costs.py` runs this.
"""

import time

STARTED = time.perf_counter()  # before the heavy imports, as scripts/pipeline.py measures them
STARTED_AT = time.time()

import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

from aejax import commands  # noqa: E402

IMPORTS_S = time.perf_counter() - STARTED

# Each step: what it is called in the results, and the functions it is (module:attribute, where
# they are looked up when called).
STEPS = {
    "compile cache opened": ["aejax.engine.compile_cache:enable"],
    "cluster check (one process)": ["aejax.engine.distributed:initialize"],
    "figure helper started": ["aejax.figures.worker:FigureWorker.__init__"],
    "data load": ["aejax.commands:_pipeline_data"],
    "stage inputs (mesh, options)": ["aejax.stages:_inputs"],
    "init (params, optimizer state)": ["aejax.stages:_fresh_state"],
    "components' identity": ["aejax.given:Given.components"],
    "resume decision": ["aejax.run.stage_loop:resume_epoch"],
    "pretrained encoder restored": ["aejax.run.stage_loop:pretrained_encoder"],
    "data identity (SHA-256 of the splits)": ["aejax.data.datasets:Dataset.fingerprint"],
    "stage folder and config.json": ["aejax.run.stage_loop:prepare_stage_dir"],
    "data to the device": ["aejax.run.stage_loop:to_device"],
    "checkpoint manager opened": ["aejax.run.checkpoint:StageCheckpoints.__init__"],
    "start state": ["aejax.run.stage_loop:start_state"],
    "TensorBoard opened, settings written": ["aejax.run.stage_loop:_open_board"],
    "programs loaded (or compiled)": ["aejax.run.stage_loop:_begin"],
    "epochs": ["aejax.run.stage_run:run_epoch"],
    "epoch keys": ["aejax.run.stage_run:epoch_key"],
    "learning-rate readout": ["aejax.run.stage_run:learning_rate"],
    "checkpoint saves (their synchronous part)": ["aejax.run.checkpoint:StageCheckpoints.save"],
    "metrics.jsonl after each epoch": ["aejax.run.stage_run:write_jsonl"],
    "TensorBoard events (per epoch, per step)": [
        "aejax.run.observe:TensorBoardLog.epoch",
        "aejax.run.observe:TensorBoardLog.steps",
    ],
    "last checkpoint committed": ["aejax.run.checkpoint:StageCheckpoints.wait_until_saved"],
    "checkpoint manager closed": ["aejax.run.checkpoint:StageCheckpoints.close"],
    "curves handed to the helper": ["aejax.figures.plots:save_curves"],
    "reconstructions computed, handed over": ["aejax.stages:_save_reconstruction_figure"],
    "waits for figures drawn aside": ["aejax.figures.plots:wait_for_figures"],
    "TensorBoard image, closed": [
        "aejax.run.observe:TensorBoardLog.image",
        "aejax.run.observe:TensorBoardLog.close",
    ],
    "metrics.json, pipeline.json": ["aejax.run.stage_loop:write_json", "aejax.commands:write_json"],
    "figure helper ended": ["aejax.figures.worker:FigureWorker.close"],
}

spent: dict[str, float] = dict.fromkeys(STEPS, 0.0)
_depth = 0  # timed steps running now: only the outermost one counts


def timed(step: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        global _depth
        _depth += 1
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _depth -= 1
            if _depth == 0:
                spent[step] += time.perf_counter() - started

    return wrapper


def wrap_steps() -> None:
    for step, targets in STEPS.items():
        for target in targets:
            module_name, _, path = target.partition(":")
            owner = importlib.import_module(module_name)
            *outer, name = path.split(".")
            for part in outer:
                owner = getattr(owner, part)
            setattr(owner, name, timed(step, getattr(owner, name)))


def main(out: str, flags: list[str]) -> int:
    wrap_steps()
    clock = commands.Clock(STARTED, STARTED_AT, imports_s=IMPORTS_S)
    began = time.perf_counter()
    code = commands.main(["pipeline", *flags], prog="timed_pipeline.py", clock=clock)
    main_s = time.perf_counter() - began
    record = {"imports_s": IMPORTS_S, "main_s": main_s, "steps": spent, "returned_at": time.time()}
    with open(out, "w") as f:
        json.dump(record, f)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
