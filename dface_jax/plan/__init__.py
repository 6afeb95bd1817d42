"""``dface-jax plan``: a run's programs compiled ahead of time for accelerators this host
does not have (TPU slices through libtpu's compile-only devices), and what XLA says about
them: memory per device, FLOPs, its estimated step time.

``topologies`` names slices and their chips, ``programs`` builds the exact jitted programs
a pretraining or LOSO run executes (from the same code the runs use), ``compile`` compiles
one and reads XLA's analyses, ``search`` finds the largest batch that fits, ``report``
formats the figures.
"""
