"""Prediction with rejection: threshold calibration, and a ``Predictor`` for images of any size and mode.

``difair.load(run_dir).predict(images)`` returns, per image, the predicted class or ``"unknown"``, the score
(higher = more likely known), the accept/reject decision and the distances (DIFAIR, CAC) or probabilities (CE)
per class. The threshold keeps a chosen fraction of the known validation images (``data.val_fraction``), or of
the known test images for a run without a validation set; it is stored in ``RUN_DIR/threshold.json`` with a
fingerprint of the checkpoint it was calibrated on, one record per score calibrated.
"""

from difair.predict.calibration import (
    THRESHOLD_FILE,
    calibrate,
    checkpoint_fingerprint,
    needs_recenter,
    pick_device,
    read_calibration,
    recenter_if_needed,
    store_calibration,
    threshold_for_known_fraction,
)
from difair.predict.images import expand_inputs, load_images, prepare_images, run_image_size
from difair.predict.predictor import UNKNOWN, Predictions, Predictor, load

__all__ = [
    "Predictor",
    "Predictions",
    "load",
    "calibrate",
    "read_calibration",
    "store_calibration",
    "threshold_for_known_fraction",
    "load_images",
    "prepare_images",
    "expand_inputs",
    "run_image_size",
    "pick_device",
    "needs_recenter",
    "recenter_if_needed",
    "checkpoint_fingerprint",
    "THRESHOLD_FILE",
    "UNKNOWN",
]
