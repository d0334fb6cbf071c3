"""The classifier as a labeller: score every segment the model has not scored yet, in chunks.

`ClassifierLabeller` goes through the one pre-labelling path (pipeline/labellers/run.py):
segments are read, scored and written `classifier.chunk_size` at a time (keyset pagination), so
memory stays flat however large the workspace. Each chunk is written in one transaction: an
interrupted run keeps whole chunks only, and a rerun resumes with the segments still unscored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.classifier.calibration import with_calibration
from pipeline.classifier.onnx import ONNX_FILE, OnnxScorer, export_int8
from pipeline.classifier.registry import LoadedModel, load_model
from pipeline.config import Codebook, Settings
from pipeline.device import resolve_device
from pipeline.errors import CultureCodeError
from pipeline.labellers.base import LabelContext
from pipeline.labellers.run import LabelRun, run_labeller
from pipeline.store import Segment, Store
from pipeline.store.predictions import PredictionRow

RUNTIMES = ("torch", "onnx")


@dataclass
class PrelabelReport:
    model_version: str
    runtime: str
    scored: int
    already_scored: int
    seconds: float
    per_code: dict[str, int]
    device: str = "cpu"

    @property
    def segments_per_second(self) -> float:
        return round(self.scored / self.seconds, 1) if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "segments_per_second": self.segments_per_second}


def scorer_for(
    loaded: LoadedModel,
    runtime: str,
    batch_size: int,
    max_length: int,
    device: str = "auto",
    store: Store | None = None,
    cache_rows: int = 0,
):
    """A function texts -> probabilities for the chosen runtime (torch or onnx) and device (auto, cpu, cuda:
    `pipeline.device`; the int8 ONNX copy runs on the CPU). With a `store` and `cache_rows`, a head-method model
    on the torch runtime reads its frozen encoder's embeddings from the workspace cache and encodes only the rest."""
    if runtime == "torch":
        cached = cached_scorer(loaded, store, batch_size, max_length, device, cache_rows)
        if cached is not None:
            return cached
        from pipeline.classifier.encoder import predict_proba

        model = loaded.model.to(resolve_device(device))
        return lambda texts: predict_proba(model, loaded.tokenizer, texts, batch_size, max_length)
    if runtime != "onnx":
        raise CultureCodeError(f"unknown runtime '{runtime}'; use {' or '.join(RUNTIMES)}")
    if device == "cuda":
        raise CultureCodeError("--device cuda: the int8 ONNX copy runs on the CPU; use --runtime torch on a GPU")
    path = loaded.path / ONNX_FILE
    if not path.is_file():  # versions trained with export_onnx: false are exported on first use
        export_int8(loaded.model, loaded.tokenizer, loaded.path)
    onnx = OnnxScorer(path, loaded.tokenizer)
    return lambda texts: onnx.predict_proba(texts, batch_size, max_length)


def cached_scorer(
    loaded: LoadedModel, store: Store | None, batch_size: int, max_length: int, device: str, cache_rows: int
):
    """texts -> probabilities through the embedding cache, or None when the model's encoder is not a recorded
    frozen one (fine-tuned models, versions from before the cache) or there is no cache."""
    from pipeline.classifier.embedding_cache import cache_for
    from pipeline.classifier.encoder import embed, linear_sigmoid

    manifest = loaded.manifest
    weights = manifest.get("encoder_sha256") if manifest.get("method") == "head" else None
    resolved = resolve_device(device)
    cache = cache_for(store, weights, bool(manifest.get("normalize", False)), max_length, resolved, cache_rows)
    if cache is None:
        return None

    def encode(texts: list[str]):
        return embed(loaded.model.to(resolved), loaded.tokenizer, texts, batch_size, max_length)

    return lambda texts: linear_sigmoid(cache.embed(texts, encode), loaded.head["weight"], loaded.head["bias"])


class ClassifierLabeller:
    """A registered classifier version (the current one by default) as a labeller."""

    name = kind = "classifier"

    def __init__(self, context: LabelContext):
        cfg = context.settings.classifier
        self.runtime = context.options.get("runtime") or cfg.runtime
        requested = context.options.get("device") or cfg.device
        self.device = resolve_device(requested) if self.runtime == "torch" else "cpu"
        check_workspace_codebook(context.store, context.codebook)
        # a project calibration in force re-decides the codes (pipeline/classifier/calibration.py)
        loaded = load_model(context.store, context.codebook, context.model_version)
        self.loaded = with_calibration(context.store, loaded)
        self.version = self.loaded.version
        self.batch_size = cfg.chunk_size
        self._score = scorer_for(
            self.loaded,
            self.runtime,
            cfg.inference_batch_size,
            cfg.max_length,
            requested,
            context.store,
            cfg.embedding_cache_rows,
        )

    def label(self, segments: list[Segment]) -> list[PredictionRow]:
        return prediction_rows(self.loaded, segments, self._score([s.text for s in segments]))

    def model_record(self) -> None:
        return None  # versions are registered by `train` and made current by `models promote`

    def report(self, run: LabelRun) -> PrelabelReport:
        return PrelabelReport(
            run.model_version, self.runtime, run.labelled, run.already, run.seconds, run.per_code, self.device
        )


def prediction_rows(loaded: LoadedModel, segments: list[Segment], probs) -> list[PredictionRow]:
    """The stored rows for `segments` scored `probs`: each code's probability and the codes at their thresholds."""
    codes = loaded.codes
    return [
        PredictionRow(seg.id, loaded.version, {c: round(float(p), 4) for c, p in zip(codes, row, strict=True)}, chosen)
        for seg, row, chosen in zip(segments, probs, loaded.decide(probs), strict=True)
    ]


def prelabel(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    model_version: str | None = None,
    runtime: str | None = None,
    show_progress: bool = True,
    segment_ids: list[str] | None = None,
) -> PrelabelReport:
    """Write `predictions` rows (scores, codes by per-code thresholds) for unscored segments."""
    options = {"runtime": runtime} if runtime else {}
    context = LabelContext(store, settings, codebook, model_version, options, show_progress)
    return score_unscored(ClassifierLabeller(context), context, segment_ids)


def score_unscored(
    labeller: Any, context: LabelContext, segment_ids: list[str] | None, **run_args: Any
) -> PrelabelReport:
    """Score with a classifier labeller (this process's `ClassifierLabeller` or the Ray engine's) the segments it has
    not scored yet; the stored run names its runtime and device (and `run_args`). Its report."""
    run = run_labeller(
        labeller,
        context.store,
        context.codebook,
        segment_ids,
        show_progress=context.show_progress,
        run_args={"runtime": labeller.runtime, "device": labeller.device, **run_args},
    )
    return labeller.report(run)


def check_workspace_codebook(store: Store, codebook: Codebook) -> None:
    stored = store.codebook_hash
    if stored is not None and stored != codebook.content_hash:
        raise CultureCodeError(
            f"the workspace {store.workspace} is labelled with codebook {stored}, not {codebook.id} "
            f"({codebook.content_hash}); pass the workspace's codebook with --codebook"
        )
