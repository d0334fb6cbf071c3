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


# --- the packaged GGUF is pinned by SHA-256 -------------------------------------------------------------------------


def _packaged_cache(tmp_path, gguf_bytes: bytes | None, converted: bool, mark: str | None):
    from pipeline.llm.backends import local

    if gguf_bytes is not None:
        (tmp_path / local._GGUF_NAME).write_bytes(gguf_bytes)
    folder = tmp_path / local.DEFAULT_LOCAL_MODEL
    if converted:
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"weights")
    if mark is not None:
        (folder / local.SOURCE_MARK).write_text(mark + "\n")
    return folder


def _no_conversion(*_args):
    raise AssertionError("a GGUF that failed its check must never be converted")


def test_a_packaged_gguf_that_differs_from_its_pin_is_refused_before_conversion(tmp_path, monkeypatch):
    from pipeline.llm.backends import local

    _packaged_cache(tmp_path, b"not the published model", converted=False, mark=None)
    monkeypatch.setattr(local, "_convert_gguf", _no_conversion)
    with pytest.raises(CultureCodeError, match="not the pinned"):
        resolve_local_model(None, cache_dir=str(tmp_path))


def test_a_matching_gguf_is_converted_once_and_its_hash_recorded(tmp_path, monkeypatch):
    import hashlib

    from pipeline.llm.backends import local

    data = b"the published model, in miniature"
    monkeypatch.setattr(local, "GGUF_SHA256", hashlib.sha256(data).hexdigest())
    _packaged_cache(tmp_path, data, converted=False, mark=None)
    calls = []

    def fake_convert(gguf, folder):
        calls.append(gguf)
        folder.mkdir()
        (folder / "config.json").write_text("{}")

    monkeypatch.setattr(local, "_convert_gguf", fake_convert)
    folder = resolve_local_model(None, cache_dir=str(tmp_path))
    assert (folder / local.SOURCE_MARK).read_text().strip() == local.GGUF_SHA256
    (tmp_path / local._GGUF_NAME).write_bytes(b"changed after conversion")  # the folder's record is what counts now
    assert resolve_local_model(None, cache_dir=str(tmp_path)) == folder
    assert len(calls) == 1


def test_a_converted_folder_made_from_another_gguf_is_refused(tmp_path):
    _packaged_cache(tmp_path, None, converted=True, mark="0" * 64)
    with pytest.raises(CultureCodeError, match="converted from a GGUF"):
        resolve_local_model(None, cache_dir=str(tmp_path))


def test_a_folder_converted_before_hashes_were_recorded_has_its_gguf_checked_once(tmp_path, monkeypatch):
    from pipeline.llm.backends import local

    folder = _packaged_cache(tmp_path, b"tampered", converted=True, mark=None)
    with pytest.raises(CultureCodeError, match="not the pinned"):
        resolve_local_model(None, cache_dir=str(tmp_path))
    assert not (folder / local.SOURCE_MARK).exists()
