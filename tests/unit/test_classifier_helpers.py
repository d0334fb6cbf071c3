"""Small generated data for the classifier tests (two codes, a handful of documents); no tests here."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from pipeline.config import ClassifierSettings, Settings, load_codebook
from pipeline.store import Document, Segment, Store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CODEBOOK = FIXTURES / "codebook_small.yaml"

CARROT = [
    "I sorted him a bed at the hostel",
    "we got her a place on the job scheme",
    "booked him in with the drug worker for treatment",
    "found him a flat through the housing team",
    "helped him with his benefits claim so he could eat",
    "drove her to the detox clinic myself",
]
STICK = [
    "one more breach and he is recalled to prison",
    "we executed the warrant at six in the morning",
    "arrested him for the burglary on the estate",
    "searched the flat and seized the drugs",
    "told him he goes back inside if he misses it",
    "put him on a curfew with a tag",
]
NEUTRAL = [
    "how long have you worked on this team",
    "the meeting is on tuesday afternoon",
    "it was raining all morning",
    "can you say a bit more about that",
    "the office moved last year",
    "we had coffee before the briefing",
]


def examples(
    n_docs: int = 6, per_doc: int = 8, seed: int = 0, codes: tuple[str, ...] = ("carrot", "stick")
) -> list[dict]:
    """JSONL-style rows: carrot-only, stick-only, both and neither, spread over documents."""
    rng = random.Random(seed)
    rows = []
    for d in range(n_docs):
        for i in range(per_doc):
            kind = (d + i) % 4
            parts, labels = [], []
            if kind in (0, 2) and "carrot" in codes:
                parts.append(rng.choice(CARROT))
                labels.append("carrot")
            if kind in (1, 2) and "stick" in codes:
                parts.append(rng.choice(STICK))
                labels.append("stick")
            if not parts:
                parts.append(rng.choice(NEUTRAL))
            rows.append(
                {
                    "text": ". ".join(parts) + f". ({seed}-{d}-{i})",
                    "codes": labels,
                    "document": f"doc{d}",
                    "speaker": "PC",
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def settings(workspace: Path, **classifier: object) -> Settings:
    cfg = {
        "base_model": "minilm",  # the small packaged encoder keeps unit tests quick
        "method": "head",
        "export_onnx": False,
        "min_segments": 10,
        "epochs": 1,
        "batch_size": 8,
        "chunk_size": 7,
        **classifier,
    }
    return Settings(workspace=str(workspace), codebook=str(CODEBOOK), classifier=ClassifierSettings(**cfg))


def codebook():
    return load_codebook(CODEBOOK)


def add_segments(store: Store, rows: list[dict], doc_prefix: str = "ws") -> list[str]:
    """Put rows into the store as segments (one document per `document`); returns segment ids."""
    ids: list[str] = []
    by_doc: dict[str, list[dict]] = {}
    for row in rows:
        by_doc.setdefault(f"{doc_prefix}-{row['document']}", []).append(row)
    with store.transaction():
        for doc_id, doc_rows in by_doc.items():
            segs = [
                Segment(id=f"{doc_id}-{i}", document_id=doc_id, position=i, text=r["text"], speaker="PC")
                for i, r in enumerate(doc_rows)
            ]
            store.put_document(
                Document(id=doc_id, source_path=f"{doc_id}.txt", format="txt", content_hash=doc_id), segs
            )
            ids += [s.id for s in segs]
    return ids


def tiny_encoder(path: Path) -> Path:
    """A randomly initialised 1-layer BERT with MiniLM's tokenizer: fast fine-tuning mechanics."""
    from transformers import BertConfig, BertModel

    from pipeline.classifier.encoder import load_tokenizer, resolve_base_model

    tokenizer = load_tokenizer(resolve_base_model("minilm"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
