"""`prelabel(...)`: score every segment the model has not scored yet, in chunks.

Segments are read, scored and written `chunk_size` at a time (keyset pagination), so memory
stays flat however large the workspace. Each chunk is written in one transaction: an
interrupted run keeps whole chunks only, and a rerun resumes with the segments still unscored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from pipeline.classifier.onnx import ONNX_FILE, OnnxScorer, export_int8
from pipeline.classifier.registry import LoadedModel, load_model
from pipeline.config import Codebook, Settings
from pipeline.errors import CultureCodeError
from pipeline.progress import progress_bar
from pipeline.store import Store, dumps, now


@dataclass
class PrelabelReport:
    model_version: str
    backend: str
    scored: int
    already_scored: int
    seconds: float
    per_code: dict[str, int]

    @property
    def segments_per_second(self) -> float:
        return round(self.scored / self.seconds, 1) if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "segments_per_second": self.segments_per_second}


def scorer_for(loaded: LoadedModel, backend: str, batch_size: int, max_length: int):
    """A function texts -> probabilities for the chosen backend."""
    if backend == "torch":
        from pipeline.classifier.encoder import predict_proba

        return lambda texts: predict_proba(loaded.model, loaded.tokenizer, texts, batch_size, max_length)
    if backend != "onnx":
        raise CultureCodeError(f"unknown backend '{backend}'; use torch or onnx")
    path = loaded.path / ONNX_FILE
    if not path.is_file():  # versions trained with export_onnx: false are exported on first use
        export_int8(loaded.model, loaded.tokenizer, loaded.path)
    onnx = OnnxScorer(path, loaded.tokenizer)
    return lambda texts: onnx.predict_proba(texts, batch_size, max_length)


def prelabel(store: Store, settings: Settings, codebook: Codebook, model_version: str | None = None,
             backend: str | None = None, show_progress: bool = True,
             segment_ids: list[str] | None = None) -> PrelabelReport:
    """Write `predictions` rows (scores, codes by per-code thresholds) for unscored segments."""
    cfg = settings.classifier
    backend = backend or cfg.backend
    _check_workspace_codebook(store, codebook)
    loaded = load_model(store, codebook, model_version)
    score = scorer_for(loaded, backend, cfg.inference_batch_size, cfg.max_length)
    todo = ("NOT EXISTS (SELECT 1 FROM predictions p WHERE p.segment_id = segments.id "
            "AND p.model_version = ?)")
    params: tuple = (loaded.version,)
    if segment_ids is not None:
        todo += " AND id IN (SELECT value FROM json_each(?))"
        params += (dumps(segment_ids),)
    total = store.count("segments", todo, params)
    per_code = dict.fromkeys(loaded.codes, 0)
    started, scored = time.monotonic(), 0
    with store.run("prelabel", {"model_version": loaded.version, "backend": backend}) as summary, \
            progress_bar(f"prelabel {loaded.version}", total=total, enabled=show_progress) as bar:
        for chunk in store.iter_segments(cfg.chunk_size, todo, params):
            probs = score([s.text for s in chunk])
            _write_chunk(store, loaded, codebook, [s.id for s in chunk], probs, per_code)
            scored += len(chunk)
            bar.advance(len(chunk))
        summary.update({"model_version": loaded.version, "backend": backend, "scored": scored})
    already = store.count("predictions", "model_version = ?", (loaded.version,)) - scored
    return PrelabelReport(loaded.version, backend, scored, already, round(time.monotonic() - started, 2), per_code)


def _write_chunk(store: Store, loaded: LoadedModel, codebook: Codebook, ids: list[str], probs: np.ndarray,
                 per_code: dict[str, int]) -> None:
    created = now()
    decisions = loaded.decide(probs)
    rows = []
    for seg_id, row, codes in zip(ids, probs, decisions):
        scores = {c: round(float(p), 4) for c, p in zip(loaded.codes, row)}
        rows.append((seg_id, loaded.version, dumps(scores), dumps(codes), codebook.content_hash, created))
        for code in codes:
            per_code[code] += 1
    with store.transaction():
        store.conn.executemany(
            "INSERT OR REPLACE INTO predictions(segment_id, model_version, scores, codes, rationale, "
            "codebook_hash, created_at) VALUES(?, ?, ?, ?, NULL, ?, ?)", rows)


def _check_workspace_codebook(store: Store, codebook: Codebook) -> None:
    stored = store.codebook_hash
    if stored is not None and stored != codebook.content_hash:
        raise CultureCodeError(
            f"the workspace {store.workspace} is labelled with codebook {stored}, not {codebook.id} "
            f"({codebook.content_hash}); pass the workspace's codebook with --codebook")
