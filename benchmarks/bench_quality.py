"""Which cold-start classifier to ship: encoders x head methods, on the dev set and by grouped CV.

    .venv/bin/python benchmarks/bench_quality.py                    # minilm and mpnet, every method
    .venv/bin/python benchmarks/bench_quality.py --encoders minilm  # one encoder
    .venv/bin/python benchmarks/bench_quality.py --finetune         # add the fine-tuned MiniLM row (slow)
    .venv/bin/python benchmarks/bench_quality.py --real ../shared/eval/real_dev.jsonl   # + real speech (default)

Training data: the example gold (examples/gold/, every .jsonl in it). Two figures per row:
- dev: trained on all of the example gold, scored on examples/dev/ (written in another register:
  case records, reports, e-mails, third-person notes, written statements), used for nothing else;
- cv: 5-fold cross-validation grouped by document on the example gold; in each outer fold the
  thresholds come from the method's own procedure on the training folds only (nested).
Columns: micro-F1, macro-F1 and mean per-code Cohen's kappa; seconds to train on the full example
gold (embedding included); segments per second to pre-label with ONNX int8 (the shipped runtime
path), measured once per encoder. The `baseline` row is the previous default (`make demo`): MiniLM,
raw embeddings, C=0.1, thresholds tuned on one validation split, trained on the keyword-like
example gold of before (examples/gold_v1/gold.jsonl) only.

Real speech (`--real`, default ../shared/eval/real_dev.jsonl in the development checkout; skipped with one line
when absent): every candidate is also scored on real fieldwork quotes it never saw, with bootstrap 95% CIs over
quotes, the gap to dev, and the paired bootstrap CI of its difference to the configured default; per-code
precision and recall of the default as `train` ships it (a fifth of the example documents held out for its test
figures); and the loop on real speech (benchmarks/real_speech.py: pseudo-documents of real quotes fed as project
labels through retrain's code path, scored on the other documents).

Embeddings are computed once per encoder and cached in $CULTURECODE_CACHE/bench (by text hash).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import real_speech as rs  # noqa: E402  (benchmarks/real_speech.py, next to this file)

from pipeline.classifier import methods
from pipeline.classifier.data import Example, label_matrix, read_gold, split_by_document
from pipeline.classifier.encoder import CodeClassifier, embed, load_encoder, load_tokenizer, resolve_base_model
from pipeline.classifier.metrics import code_metrics, tune_thresholds
from pipeline.classifier.packaged import encoder_cache_dir
from pipeline.classifier.thresholds import grouped_folds
from pipeline.config import ClassifierSettings, load_codebook, load_settings

GOLD = ROOT / "examples" / "gold"
OLD_GOLD = ROOT / "examples" / "gold_v1" / "gold.jsonl"
DEV = ROOT / "examples" / "dev"


@dataclass(frozen=True)
class Method:
    name: str
    normalize: bool = False
    codebook: bool = False
    c: float = 0.1
    class_weight: str | None = "balanced"
    thresholds: str = "cv"  # cv | split (one validation split, as before)


METHODS = [
    Method("raw C=0.1 split-thr", thresholds="split"),
    Method("raw C=0.1 cv-thr"),
    Method("norm C=0.1", normalize=True),
    Method("norm C=0.03", normalize=True, c=0.03),
    Method("norm+codebook C=0.1", normalize=True, codebook=True),
    Method("norm+codebook C=0.03", normalize=True, codebook=True, c=0.03),
    Method("norm+codebook C=0.01", normalize=True, codebook=True, c=0.01),
]
BASELINE = Method("baseline (old default)", thresholds="split")


@dataclass
class Encoded:
    """Raw mean-pooled embeddings of every text, and the codebook's code vectors, for one encoder."""

    name: str
    vectors: dict[str, np.ndarray]
    codes: np.ndarray
    embed_seconds_per_text: float
    prelabel_per_second: float | None = None
    extra: dict = field(default_factory=dict)

    def x(self, examples: list[Example], normalize: bool) -> np.ndarray:
        return self.texts([e.text for e in examples], normalize)

    def texts(self, texts: list[str], normalize: bool) -> np.ndarray:
        x = np.stack([self.vectors[_key(t)] for t in texts]).astype(np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True) if normalize else x

    def embedder(self, normalize: bool):
        """`embed_texts` for the library's training code: these cached vectors instead of encoding."""
        return lambda texts, bar: self.texts(texts, normalize).astype(np.float32)


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def encode(name: str, texts: list[str], codebook, cfg: ClassifierSettings) -> Encoded:
    cache = encoder_cache_dir().parent / "bench" / name
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / "vectors.npz"
    timing = cache / "seconds_per_text.json"
    known = dict(np.load(store)) if store.exists() else {}
    base = resolve_base_model(name)
    tokenizer = load_tokenizer(base)
    model = CodeClassifier(load_encoder(base), 1)
    texts = texts + [t for group in methods.codebook_texts(codebook) for t in group]
    todo = sorted({t for t in texts if _key(t) not in known})
    if todo:
        started = time.perf_counter()
        for key, vec in zip(map(_key, todo), embed(model, tokenizer, todo, 32, cfg.max_length), strict=True):
            known[key] = vec
        timing.write_text(json.dumps((time.perf_counter() - started) / len(todo)))
        np.savez(store, **known)
    per_text = json.loads(timing.read_text()) if timing.exists() else 0.0
    model.normalize = True  # code vectors are means of unit vectors either way
    codes = methods.code_vectors(model, tokenizer, codebook, cfg)
    return Encoded(name, known, codes, per_text, extra={"encoder": model.encoder})


def fit_predict(
    enc: Encoded, m: Method, train: list[Example], test: list[Example], codes: list[str], cfg
) -> np.ndarray:
    """Fit `m` on `train` (thresholds by its own procedure on `train` only); decisions on `test`."""
    s = cfg.model_copy(update={"head_c": m.c, "head_class_weight": m.class_weight})
    projection = methods.feature_map(enc.codes.shape[1], enc.codes if m.codebook else None)
    x, y = enc.x(train, m.normalize), label_matrix(train, codes)
    if m.thresholds == "split":  # the old way: a validation split held out of training
        split = split_by_document(train, cfg.model_copy(update={"test_fraction": 0.01}))
        fit_on = split.train + split.test
        w, b = methods.fit_linear(enc.x(fit_on, m.normalize), label_matrix(fit_on, codes), s, projection)
        val = split.validation
        thresholds = tune_thresholds(
            label_matrix(val, codes), methods.linear_proba(enc.x(val, m.normalize), w, b), cfg.default_threshold
        )
    else:
        oof = np.zeros(y.shape)
        for tr, te in grouped_folds([e.document for e in train], cfg.cv_folds):
            oof[te] = methods.linear_proba(x[te], *methods.fit_linear(x[tr], y[tr], s, projection))
        thresholds = tune_thresholds(y, oof, cfg.default_threshold)
        w, b = methods.fit_linear(x, y, s, projection)
    return methods.linear_proba(enc.x(test, m.normalize), w, b) >= thresholds


def summary(y_true: np.ndarray, y_pred: np.ndarray, codes: list[str]) -> dict:
    m = code_metrics(y_true, y_pred, codes)
    kappas = [v["cohen_kappa"] or 0.0 for v in m["per_code"].values() if v["support"]]
    return {"micro_f1": m["micro_f1"], "macro_f1": m["macro_f1"], "kappa": round(float(np.mean(kappas)), 4)}


def evaluate_row(enc: Encoded, m: Method, gold: list[Example], dev: list[Example], codes, cfg) -> dict:
    started = time.perf_counter()
    dev_pred = fit_predict(enc, m, gold, dev, codes, cfg)
    fit_seconds = time.perf_counter() - started
    cv_pred = np.zeros((len(gold), len(codes)), dtype=bool)
    for tr, te in grouped_folds([e.document for e in gold], 5):
        cv_pred[te] = fit_predict(enc, m, [gold[i] for i in tr], [gold[i] for i in te], codes, cfg)
    return {
        "encoder": enc.name,
        "method": m.name,
        "dev": summary(label_matrix(dev, codes), dev_pred, codes),
        "cv": summary(label_matrix(gold, codes), cv_pred, codes),
        "train_s": round(enc.embed_seconds_per_text * len(gold) + fit_seconds, 1),
        "prelabel_per_s": enc.prelabel_per_second,
    }


def baseline_row(enc: Encoded, old: list[Example], gold: list[Example], dev: list[Example], codes, cfg) -> dict:
    """The old default trained on the old example gold; its `cv` figures are on the whole current
    example gold (none of it seen in training), so every row's `cv` column scores the same segments."""
    started = time.perf_counter()
    dev_pred = fit_predict(enc, BASELINE, old, dev, codes, cfg)
    fit_seconds = time.perf_counter() - started
    gold_pred = fit_predict(enc, BASELINE, old, gold, codes, cfg)
    return {
        "encoder": enc.name,
        "method": BASELINE.name,
        "dev": summary(label_matrix(dev, codes), dev_pred, codes),
        "cv": summary(label_matrix(gold, codes), gold_pred, codes),
        "train_s": round(enc.embed_seconds_per_text * len(old) + fit_seconds, 1),
        "prelabel_per_s": enc.prelabel_per_second,
    }


def prelabel_speed(name: str, texts: list[str], cfg: ClassifierSettings, n: int) -> float:
    """Segments per second through the int8 ONNX path (export excluded), as `prelabel --runtime onnx`."""
    from pipeline.classifier.onnx import OnnxScorer, export_int8

    base = resolve_base_model(name)
    tokenizer = load_tokenizer(base)
    model = CodeClassifier(load_encoder(base), 15, normalize=True).eval()
    sample = [texts[i % len(texts)] for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        scorer = OnnxScorer(export_int8(model, tokenizer, Path(tmp)), tokenizer)
        scorer.predict_proba(sample[:32], cfg.inference_batch_size, cfg.max_length)  # warm-up
        started = time.perf_counter()
        scorer.predict_proba(sample, cfg.inference_batch_size, cfg.max_length)
        return round(n / (time.perf_counter() - started), 1)


def finetune_row(gold: list[Example], dev: list[Example], codes, cfg, real: list[Example] | None = None) -> dict:
    """The fine-tuned MiniLM (`--method finetune`, the configured default before): dev only (CV is 5x slower)."""
    from pipeline.classifier.encoder import predict_proba

    s = cfg.model_copy(update={"base_model": "minilm", "method": "finetune"})
    split = split_by_document(gold, s.model_copy(update={"test_fraction": 0.01}))
    started = time.perf_counter()
    methods.seed_everything(s.seed)
    base = resolve_base_model("minilm")
    tokenizer = load_tokenizer(base)
    model = CodeClassifier(load_encoder(base), len(codes))
    methods.fit_finetune(model, tokenizer, split.train + split.test, split.validation, codes, s, show_progress=False)
    val = predict_proba(model, tokenizer, [e.text for e in split.validation], 64, s.max_length)
    thresholds = tune_thresholds(label_matrix(split.validation, codes), val, s.default_threshold)
    seconds = time.perf_counter() - started
    pred = predict_proba(model, tokenizer, [e.text for e in dev], 64, s.max_length) >= thresholds
    if real:
        FINETUNED["real"] = predict_proba(model, tokenizer, [e.text for e in real], 64, s.max_length) >= thresholds
    return {
        "encoder": "minilm",
        "method": "finetune (split-thr)",
        "dev": summary(label_matrix(dev, codes), pred, codes),
        "cv": None,
        "train_s": round(seconds, 1),
        "prelabel_per_s": None,
    }


def learner(enc: Encoded, codebook, codes: list[str]) -> rs.Learner:
    """What `train` (no prior) and `retrain` (the last `n_prior` examples are the prior) fit, on this encoder's
    cached vectors: the same split, head and threshold code (pipeline.classifier.training)."""
    from pipeline.classifier.training import fit_version, training_split

    def learn(examples: list[Example], n_prior: int, cfg: ClassifierSettings):
        model = CodeClassifier(enc.extra["encoder"], len(codes))
        split = training_split(examples, n_prior, cfg)
        fitted, _ = fit_version(model, None, split, codes, cfg, codebook, enc.embedder(cfg.normalize))
        return lambda part: fitted.score(part) >= fitted.thresholds

    return learn


def default_method(cfg: ClassifierSettings) -> Method:
    """The configured head settings as a bench method (the shipped default when cfg is configs/pipeline.yaml)."""
    return Method(
        "default (pipeline.yaml)",
        normalize=cfg.normalize,
        codebook=cfg.codebook_features,
        c=cfg.head_c,
        class_weight=cfg.head_class_weight,
    )


def real_rows(rows: list[dict], decisions: dict, real: list[Example], codes: list[str], default_key) -> None:
    """Adds each row's real-speech figures (CIs), the gap to dev and the paired difference to the default."""
    y = label_matrix(real, codes)
    weights = rs.bootstrap_weights(len(real))
    for r in rows:
        key = (r["encoder"], r["method"])
        if key not in decisions:
            continue
        r["real"] = rs.bootstrap_figures(y, decisions[key], weights).values
        r["real_per_code"] = rs.per_code(y, decisions[key], codes)
        r["gap_micro"] = round(r["dev"]["micro_f1"] - r["real"]["micro_f1"][0], 4)
        if default_key in decisions and key != default_key:
            r["vs_default"] = rs.paired_difference(y, decisions[key], decisions[default_key], weights).values


def print_real(rows: list[dict], n_real: int) -> None:
    print(f"\nreal speech: {n_real} real fieldwork quotes (never trained on); 95% bootstrap CIs over quotes")
    head = (
        f"{'encoder':<7} {'method':<24} {'micro-F1':<20} {'macro-F1':<20} {'kappa':<20} {'dev-real':>8}"
        f"  {'micro vs shipped [95% CI]':<26} {'kappa vs shipped':<24}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if "real" not in r:
            continue
        cells = "".join(rs.Figures(r["real"]).cell(m).ljust(21) for m in rs.METRICS)
        versus = ""
        if "vs_default" in r:
            diff = rs.Figures(r["vs_default"])
            versus = f"{diff.cell('micro_f1'):<26} {diff.cell('kappa'):<24}"
        print(f"{r['encoder']:<7} {r['method']:<24} {cells}{r['gap_micro']:>8.3f}  {versus}")


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'encoder':<7} {'method':<24} {'dev micro':>9} {'macro':>6} {'kappa':>6} | "
        f"{'cv micro':>8} {'macro':>6} {'kappa':>6} | {'train s':>7} {'seg/s':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        cv = r["cv"] or {"micro_f1": float("nan"), "macro_f1": float("nan"), "kappa": float("nan")}
        speed = "" if r["prelabel_per_s"] is None else f"{r['prelabel_per_s']:.0f}"
        print(
            f"{r['encoder']:<7} {r['method']:<24} {r['dev']['micro_f1']:>9.3f} {r['dev']['macro_f1']:>6.3f} "
            f"{r['dev']['kappa']:>6.3f} | {cv['micro_f1']:>8.3f} {cv['macro_f1']:>6.3f} {cv['kappa']:>6.3f} | "
            f"{r['train_s'] or float('nan'):>7.1f} {speed:>6}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="minilm,mpnet")
    parser.add_argument("--finetune", action="store_true", help="add the fine-tuned MiniLM row (minutes)")
    parser.add_argument("--no-speed", action="store_true", help="skip the ONNX int8 pre-labelling speed")
    parser.add_argument("--speed-segments", type=int, default=512)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--gold", type=Path, default=GOLD, help="the example gold to train on (file or folder)")
    parser.add_argument("--methods", default="", help="comma-separated method names to run (default: all)")
    parser.add_argument(
        "--real",
        type=Path,
        default=rs.REAL_DEFAULT,
        help="real quotes (JSONL: id, document, text, codes) to measure on; skipped with a line when absent",
    )
    parser.add_argument("--no-loop", action="store_true", help="skip the loop on the real quotes")
    parser.add_argument(
        "--without",
        type=Path,
        action="append",
        default=[],
        help="add a row: the default trained on the example gold minus this file (an ablation; repeatable)",
    )
    args = parser.parse_args()
    settings = load_settings(ROOT / "configs" / "pipeline.yaml")
    codebook = load_codebook(ROOT / "configs" / "codebooks" / "police_culture.yaml")
    cfg, codes = settings.classifier, codebook.code_ids
    gold, dev = read_gold(args.gold, codebook), read_gold(DEV, codebook)
    old = read_gold(OLD_GOLD, codebook)
    real = rs.read_real(args.real, codebook)
    texts = [e.text for e in gold + dev + old + (real or [])]
    rows, decisions = [], {}
    candidates = [default_method(cfg), *METHODS]
    for name in args.encoders.split(","):
        enc = encode(name, texts, codebook, cfg)
        if not args.no_speed:
            enc.prelabel_per_second = prelabel_speed(name, [e.text for e in gold], cfg, args.speed_segments)
        if name == "minilm":
            rows.append(baseline_row(enc, old, gold, dev, codes, cfg))
            if real:
                decisions[(name, BASELINE.name)] = fit_predict(enc, BASELINE, old, real, codes, cfg)
        for m in [m for m in candidates if not args.methods or m.name in args.methods.split(",")]:
            rows.append(evaluate_row(enc, m, gold, dev, codes, cfg))
            if real:
                decisions[(name, m.name)] = fit_predict(enc, m, gold, real, codes, cfg)
            print_table(rows[-1:])
        for left_out in args.without:
            rows.append(ablation_row(enc, left_out, gold, dev, real, codebook, cfg, decisions))
        if real and name == cfg.base_model:
            shipped_row(enc, gold, dev, real, codebook, cfg, rows, decisions)
            if not args.no_loop:
                loop = rs.loop_curve(real, gold, codes, cfg, learner(enc, codebook, codes))
                rs.print_loop(loop, f"the loop on real speech ({name}, configs/pipeline.yaml): {LOOP_NOTE}")
                rows.append({"encoder": name, "method": "loop on real speech", "loop": loop})
    if args.finetune:
        rows.append(finetune_row(gold, dev, codes, cfg, real))
        if "real" in FINETUNED:
            decisions[("minilm", "finetune (split-thr)")] = FINETUNED["real"]
    print(
        f"\nexample gold: {len(gold)} segments, {len({e.document for e in gold})} documents; dev: {len(dev)} segments"
    )
    print_table([r for r in rows if "dev" in r])
    if real:
        real_rows(rows, decisions, real, codes, (cfg.base_model, SHIPPED))
        print_real(rows, len(real))
        shipped = next((r for r in rows if r["method"] == SHIPPED), None)
        if shipped:
            rs.print_per_code(f"{cfg.base_model}, {SHIPPED}", shipped["real_per_code"])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


SHIPPED = "as `train` ships it"
FINETUNED: dict[str, np.ndarray] = {}  # the fine-tuned row's decisions on the real quotes
LOOP_NOTE = (
    "k pseudo-documents of real quotes fed as project labels next to the example gold (retrain's weighting, "
    "split and thresholds), scored on the other documents' quotes, mean over every choice of k"
)


def ablation_row(enc, left_out: Path, gold, dev, real, codebook, cfg, decisions) -> dict:
    """The configured default trained on the example gold without the texts of `left_out`."""
    codes = codebook.code_ids
    dropped = {e.text for e in read_gold(left_out, codebook)}
    kept = [e for e in gold if e.text not in dropped]
    m = default_method(cfg)
    name = f"without {left_out.stem}"[:24]
    if real:
        decisions[(enc.name, name)] = fit_predict(enc, m, kept, real, codes, cfg)
    started = time.perf_counter()
    dev_pred = fit_predict(enc, m, kept, dev, codes, cfg)  # no cv: it would score another gold than the other rows
    return {
        "encoder": enc.name,
        "method": name,
        "dev": summary(label_matrix(dev, codes), dev_pred, codes),
        "cv": None,
        "train_s": round(enc.embed_seconds_per_text * len(kept) + time.perf_counter() - started, 1),
        "prelabel_per_s": enc.prelabel_per_second,
    }


def shipped_row(enc, gold, dev, real, codebook, cfg, rows, decisions) -> None:
    """The configured default trained as `culturecode train --gold examples/gold` trains it (measured on a fifth of
    the documents, then refit on all with `refit_on_all`), scored on dev and on the real quotes."""
    codes = codebook.code_ids
    decide = learner(enc, codebook, codes)(list(gold), 0, cfg)
    decisions[(enc.name, SHIPPED)] = decide(real)
    rows.append(
        {
            "encoder": enc.name,
            "method": SHIPPED,
            "dev": summary(label_matrix(dev, codes), decide(dev), codes),
            "cv": None,
            "train_s": None,
            "prelabel_per_s": enc.prelabel_per_second,
        }
    )


if __name__ == "__main__":
    main()
