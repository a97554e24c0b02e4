"""Shared test settings."""

from __future__ import annotations

import os

import torch

# Keep the suite predictable on 2 cores: one intra-op thread per test process.
torch.set_num_threads(int(os.environ.get("DIFAIR_TEST_THREADS", "1")))

# The timed memory-format probe caches its verdicts under $DIFAIR_CACHE: never the user's own cache in tests.
if "DIFAIR_CACHE" not in os.environ:
    import tempfile

    os.environ["DIFAIR_CACHE"] = tempfile.mkdtemp(prefix="difair-test-cache-")
