"""dface-jax: D-FACE micro-expression recognition with discrete facial action tokens, in JAX/Flax."""

__version__ = "0.1.0"
