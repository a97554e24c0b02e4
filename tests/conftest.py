"""Shared test settings."""

from __future__ import annotations

import os

import torch

# Keep the suite predictable on 2 cores: one intra-op thread per test process.
torch.set_num_threads(int(os.environ.get("DIFAIR_TEST_THREADS", "1")))
