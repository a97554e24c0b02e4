"""The benchmark: grids of runs with the paper's presets, and tables beside the paper's Table 1."""
