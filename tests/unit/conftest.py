"""Unit-test-wide fixtures."""

from __future__ import annotations

import pytest

from pipeline.classifier import packaged


@pytest.fixture(autouse=True)
def small_default_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped settings name the packaged all-mpnet-base-v2 (438 MB, ~5x slower than MiniLM).
    Unit tests that train through those settings get the packaged MiniLM instead, so they stay
    fast; the mpnet packaging itself is tested with fake parts (test_classifier_quality.py), and
    the integration and end-to-end tests use the real default."""
    real = packaged.packaged_path
    monkeypatch.setattr(packaged, "packaged_path", lambda name: real("minilm" if name == "mpnet" else name))
