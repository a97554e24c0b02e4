"""difair: DIFAIR open-set recognition in PyTorch, with its baselines, metrics and benchmarks."""

from difair.errors import DifairError

__version__ = "0.1.0"

__all__ = ["DifairError", "__version__"]
