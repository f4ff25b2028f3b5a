"""The research toolkit: many seeds as one program, the label-budget study, inspection figures.

Built on the core pipeline (`aejax`), which never imports from here.
"""
