"""The whole pipeline in one process: pretrain -> transplant -> fine-tune -> figures.

Example: python scripts/pipeline.py --dataset fashion_mnist --epochs 10

Takes both stages' flags; --pretrain-NAME and --finetune-NAME (epochs, batch size, lr, seed)
give one stage its own value. The data is loaded once and JAX imported once; each stage resumes as
scripts/pretrain.py and scripts/finetune.py would. Writes WORKDIR/pipeline.json: both stages'
metrics and where the process's time went.
"""

import time

STARTED = time.perf_counter()  # before the heavy imports, so their cost is measured too
STARTED_AT = time.time()  # the same moment on the wall clock, for whoever launched this process

import sys  # noqa: E402

from aejax import commands  # noqa: E402

if __name__ == "__main__":
    clock = commands.Clock(STARTED, STARTED_AT, imports_s=time.perf_counter() - STARTED)
    sys.exit(commands.main(["pipeline", *sys.argv[1:]], prog="pipeline.py", clock=clock))
