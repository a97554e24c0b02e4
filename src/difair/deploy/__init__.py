"""Export for deployment: a run as an ONNX or TorchScript file holding the Predictor's preprocessing, the model
and the method's score, with its class names, score name and threshold in ``model.json`` and a README
(docs/export.md).

Names are imported on first use, so ``import difair.deploy`` (and the CLI) stays light.
"""

from __future__ import annotations

from difair.lazy import lazy_dir, lazy_getattr

_EXPORTS = {
    "export_run": "export",
    "EXPORT_FORMATS": "export",
    "MODEL_FILES": "export",
    "META_FILE": "export",
    "DeployModule": "graph",
    "INPUT_NAME": "graph",
    "OUTPUT_NAMES": "graph",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
__dir__ = lazy_dir(globals(), _EXPORTS)
