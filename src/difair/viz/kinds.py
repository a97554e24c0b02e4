"""The names of the ``difair plot`` kinds, in a module of their own: the parser reads them without importing
matplotlib; ``difair.viz.plots`` registers one drawing function per name."""

PLOT_KINDS = (
    "card",
    "mean-representations",
    "tsne",
    "confusion",
    "similarity",
    "filter-correlation",
    "activation-maps",
    "scores",
    "roc",
)

TOP_K = 6  # classes shown in a card's z (--top-k)
TSNE_POINTS = 1500  # samples a t-SNE embeds (--max-points)
