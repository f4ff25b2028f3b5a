"""One stage, on disk and in time: the stage loop and its resume order, checkpoints, the workdir
and its lock, signals, TensorBoard and the profiler, saved stages read back.

Sits above the model and engine wings and joins them; nothing below imports it.
"""
