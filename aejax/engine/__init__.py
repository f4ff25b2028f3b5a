"""Task-agnostic compiled programs: `train.train_step`, one `lax.scan` per epoch, evaluation,
random keys, devices and hosts (`parallel`, `distributed`), and the compile cache.

A task reaches the engine only as a metrics function (`aejax.contracts`); the engine imports the
data wing and the base modules, never the model or the run wing.
"""
