"""Training and evaluation engine."""

from difair.engine.fit import fit

__all__ = ["fit"]
