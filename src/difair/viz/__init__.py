"""Figures of a run and its HTML report (matplotlib Figures, no pyplot state); see docs/visualization.md.

Names are imported on first use, so ``import difair.viz`` (and the CLI) stays light.
"""

from __future__ import annotations

from difair.lazy import lazy_dir, lazy_getattr

_EXPORTS = {
    "RunAnalysis": "analysis",
    "analyze": "analysis",
    "CardInput": "cards",
    "image_card": "cards",
    "sample_card": "cards",
    "card_input": "cards",
    "mean_representations_figure": "representations",
    "class_similarity_figure": "representations",
    "cosine_similarity_matrix": "representations",
    "filter_correlation_figure": "representations",
    "filter_correlation_matrix": "representations",
    "tsne_embedding": "embeddings",
    "tsne_figure": "embeddings",
    "confusion_matrices": "embeddings",
    "confusion_figure": "embeddings",
    "activation_maps": "activations",
    "activation_maps_figure": "activations",
    "class_feature_maps": "activations",
    "score_distribution_figure": "curves",
    "roc_figure": "curves",
    "card_for_image": "explain",
    "explain_image": "explain",
    "build_report": "report",
    "write_report": "report",
    "plot": "plots",
    "save_figure": "style",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
__dir__ = lazy_dir(globals(), _EXPORTS)
