"""`culturecode next`: the unannotated segments a strategy puts first, from the current model's stored scores.

The pool is read from the workspace only (predictions, annotations and gold, the model's thresholds, and, for a
head-method model, the segments' and the codebook texts' vectors from the embedding cache), so choosing
the next batch loads no encoder and takes well under a second for tens of thousands of segments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import CultureCodeError
from pipeline.learning.strategies import Candidate, Pick, Pool, check, run_strategy
from pipeline.store import Store
from pipeline.store.annotations import (
    annotated_per_code,
    annotated_segment_ids,
    live_annotations,
    review_annotations,
    unannotated_segment_ids,
)
from pipeline.store.codebooks import codebook_version
from pipeline.store.embeddings import cached_vectors, encoder_key, text_sha256
from pipeline.store.gold import gold_per_code, gold_segments
from pipeline.store.models import current_model, get_model
from pipeline.store.predictions import predicted_segments

MANIFEST = "classifier.json"  # a classifier version's codes and thresholds (pipeline/classifier/registry.py)
MAX_EMBEDDED_POOL = 50_000  # larger pools go without embeddings (hybrid then spreads its batch in score space)


@dataclass
class NextReport:
    strategy: str
    model_version: str
    candidates: int  # unannotated segments the model has scored
    unscored: int  # unannotated segments without a score of this version (run `culturecode prelabel`)
    label_counts: dict[str, int]
    counts_from: str
    picks: list[Pick] = field(default_factory=list)


def model_manifest(store: Store, version: str) -> dict[str, Any]:
    """A classifier version's manifest; {} for models that store none."""
    row = get_model(store, version)
    if not row or not row.get("path"):
        return {}
    try:
        manifest = json.loads((Path(row["path"]) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def model_thresholds(store: Store, version: str) -> tuple[list[str], dict[str, float]]:
    """(codes, {code: threshold}) a classifier version stored; ([], {}) for models that store none."""
    manifest = model_manifest(store, version)
    codes, thresholds = manifest.get("codes") or [], manifest.get("thresholds") or []
    return list(codes), {c: float(t) for c, t in zip(codes, thresholds, strict=False)}


def _cached_rows(
    store: Store, manifest: dict[str, Any], texts: list[str], devices: tuple[str, ...] = ("cpu", "cuda")
) -> tuple[list[Any], str] | None:
    """(the texts' vectors, the device kind they were cached under) from the workspace's embedding cache under the
    model's frozen encoder (head-method versions record its weights), when every text has one; else None."""
    import numpy as np

    weights = manifest.get("encoder_sha256")
    if not weights or not texts or len(texts) > MAX_EMBEDDED_POOL:
        return None
    hashes = [text_sha256(t) for t in texts]
    for device in devices:
        key = encoder_key(weights, bool(manifest.get("normalize")), int(manifest.get("max_length", 128)), device)
        found = cached_vectors(store, key, set(hashes))
        if len(found) == len(set(hashes)):
            return [np.frombuffer(found[h], dtype=np.float32) for h in hashes], device
    return None


def cached_code_vectors(
    store: Store, manifest: dict[str, Any], codebook_hash: str | None, devices: tuple[str, ...] = ("cpu", "cuda")
) -> dict[str, Any]:
    """{code: its codebook-text vector} (`pipeline.classifier.methods.code_vectors`, the head method's codebook
    features) from the embedding cache, when every codebook text of the model's codebook is cached under its encoder
    (training with codebook features puts them there); else {} (no encoder is loaded to fill gaps)."""
    import numpy as np
    import yaml

    from pipeline.classifier.codebook_vectors import code_vectors, codebook_texts
    from pipeline.config import ClassifierSettings, Codebook, load_yaml

    stored = codebook_version(store, codebook_hash) if codebook_hash and manifest.get("encoder_sha256") else None
    if stored is None:
        return {}
    try:
        codebook = Codebook.model_validate(load_yaml(stored.yaml))
    except (ValueError, yaml.YAMLError):  # a stored version this release cannot read: go without codebook vectors
        return {}
    found = _cached_rows(store, manifest, [t for group in codebook_texts(codebook) for t in group], devices)
    if found is None:
        return {}
    rows = np.stack(found[0]).astype(np.float32)
    vectors = code_vectors(None, None, codebook, ClassifierSettings(), lambda texts, bar: rows)
    return dict(zip(codebook.code_ids, vectors, strict=True))


def labelled_codes(store: Store) -> dict[str, set[str]]:
    """{segment: the codes it was labelled with}: the gold where adjudicated, else the latest review decision, else
    the union of each annotator's latest annotation."""
    per_annotator: dict[str, dict[str, list[str]]] = {}
    for a in live_annotations(store):  # oldest edit first: an annotator's latest annotation wins
        per_annotator.setdefault(a.segment_id, {})[a.annotator] = a.codes
    out = {seg: set().union(*map(set, by.values())) for seg, by in per_annotator.items()}
    out.update({a.segment_id: set(a.codes) for a in review_annotations(store)})
    out.update({g.segment_id: set(g.codes) for g in gold_segments(store)})
    return out


def _label_counts(store: Store, candidates: list[Candidate], pool_codes: list[str], thresholds) -> tuple[dict, str]:
    """Labels per code so far: the annotations', else the gold's, else (nothing labelled) the predicted ones."""
    counts = annotated_per_code(store)
    if sum(counts.values()):
        return counts, "annotations"
    counts = gold_per_code(store)
    if sum(counts.values()):
        return counts, "gold"
    predicted = {
        code: sum(c.scores.get(code, 0.0) >= thresholds.get(code, 0.5) for c in candidates) for code in pool_codes
    }
    return predicted, "predictions"


def build_pool(store: Store, model_version: str | None = None, seed: int = 0) -> tuple[Pool, str, int]:
    """(pool, model version, unannotated segments the version has not scored)."""
    version = model_version or current_model(store)
    if version is None:
        raise CultureCodeError(
            f"no model has scored {store.workspace}'s segments: run `culturecode train` then "
            "`culturecode prelabel` (or `culturecode llm label`) first"
        )
    if get_model(store, version) is None:
        raise CultureCodeError(f"--model-version '{version}': no such model (see `culturecode models list`)")
    predicted = predicted_segments(store, version)
    open_ids = set(unannotated_segment_ids(store))
    done = annotated_segment_ids(store)
    candidates = [
        Candidate(p.segment_id, p.scores, p.document_id, p.speaker, p.text)
        for p in predicted
        if p.segment_id in open_ids
    ]
    codes, thresholds = model_thresholds(store, version)
    if not codes:
        codes = sorted({code for p in predicted for code in p.scores})
    counts, counts_from = _label_counts(store, candidates, codes, thresholds)
    labelled = [p for p in predicted if p.segment_id in done]
    manifest = model_manifest(store, version)
    found = _cached_rows(store, manifest, [c.text for c in candidates] + [p.text for p in labelled])
    vectors, device = found if found else (None, "")
    chosen = labelled_codes(store)
    codebook_hash = manifest.get("codebook_hash") or (get_model(store, version) or {}).get("codebook_hash")
    for cand, vector in zip(candidates, vectors or [], strict=False):
        cand.vector = vector
    pool = Pool(
        candidates,
        codes,
        thresholds,
        {code: counts.get(code, 0) for code in codes},
        counts_from,
        [p.scores for p in labelled],
        seed,
        list((vectors or [])[len(candidates) :]),
        [chosen.get(p.segment_id, set()) for p in labelled],
        cached_code_vectors(store, manifest, codebook_hash, (device,)) if device else {},
    )
    return pool, version, len(open_ids) - len(candidates)


def next_segments(
    store: Store, strategy: str = "uncertainty", n: int = 20, model_version: str | None = None, seed: int = 0
) -> NextReport:
    """The `n` unannotated segments `strategy` puts first, each with the reason."""
    check(strategy)
    if n < 1:
        raise CultureCodeError(f"--n {n}: ask for at least one segment")
    pool, version, unscored = build_pool(store, model_version, seed)
    picks = run_strategy(strategy, pool, n)
    return NextReport(strategy, version, len(pool.candidates), unscored, pool.label_counts, pool.counts_from, picks)
