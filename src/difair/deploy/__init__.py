"""Export for deployment: a run as an ONNX or TorchScript file holding the Predictor's preprocessing, the model
and the method's score, with its class names, score name and threshold in ``model.json`` and a README
(docs/export.md)."""

from difair.deploy.export import EXPORT_FORMATS, META_FILE, MODEL_FILES, export_run
from difair.deploy.graph import INPUT_NAME, OUTPUT_NAMES, DeployModule

__all__ = [
    "export_run",
    "DeployModule",
    "EXPORT_FORMATS",
    "MODEL_FILES",
    "META_FILE",
    "INPUT_NAME",
    "OUTPUT_NAMES",
]
