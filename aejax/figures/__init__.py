"""Figures: loss curves and image rows (`plots`), drawn in-process or by a helper process
(`worker`, `helper`) that never imports JAX. Imports only the base modules."""
