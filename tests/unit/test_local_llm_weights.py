"""The local LLM loads safetensors only: pickle weights can run code when loaded (issue 12, defect 9)."""

from __future__ import annotations

import pytest

from pipeline.errors import CultureCodeError
from pipeline.llm.backends.local import LocalBackend, resolve_local_model


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.pt"])
def test_a_folder_of_pickle_weights_is_refused(tmp_path, weights):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / weights).write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(CultureCodeError, match=f"{weights}.*pickle.*safetensors") as caught:
        resolve_local_model(str(tmp_path))
    assert "\n" not in str(caught.value)
    backend = LocalBackend(str(tmp_path), lazy=True)
    with pytest.raises(CultureCodeError, match="pickle"):
        backend.load()  # the loader refuses before transformers reads a byte


def test_a_folder_without_weights_is_refused_and_safetensors_pass(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CultureCodeError, match="no .safetensors weights"):
        resolve_local_model(str(tmp_path))
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"")
    (tmp_path / "training_args.bin").write_bytes(b"")  # a pickle beside safetensors is never loaded
    assert resolve_local_model(str(tmp_path)) == tmp_path
