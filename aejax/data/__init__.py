"""Data: uint8 arrays in, named splits out.

`datasets` (Dataset, Split, DeviceData, load_dataset, normalize, to_device), `download` (the IDX
archives over http(s)), `idx_cache` (decompressed copies in the user cache), `splits` (held-out
and class-balanced subsets). Imports nothing of the model, engine or run wings.
"""
