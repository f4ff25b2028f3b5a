"""What is learnt: Flax modules, the objectives that train them, generation, optimizers, the
encoder transplant as a PyTree operation, and PyTorch interop.

Imports the data wing and the base modules, never the engine or the run wing.
"""
