"""Quality figures say which data they were measured on (figures on our own writing are labelled as such)."""

from __future__ import annotations

from pipeline.classifier.card import write_model_card
from pipeline.classifier.provenance import data_note, is_bundled_example
from pipeline.config import PROJECT_ROOT, load_codebook
from tests.unit.test_classifier_helpers import CODEBOOK


def test_the_bundled_example_gold_is_labelled_as_our_own_writing() -> None:
    for source in (PROJECT_ROOT / "examples" / "gold", PROJECT_ROOT / "examples" / "gold" / "gold.jsonl"):
        assert is_bundled_example(source)
        assert "synthetic" in data_note(source) and "real transcripts" in data_note(source)


def test_a_projects_own_data_carries_no_caveat(tmp_path) -> None:
    own = tmp_path / "gold.jsonl"
    own.write_text("", encoding="utf-8")
    assert data_note(own) == "" and data_note("gold table of /work/ws") == "" and data_note(None) == ""


def _card(tmp_path, source: str) -> str:
    codes = ["carrot", "stick"]
    per_code = {c: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1, "cohen_kappa": 1.0} for c in codes}
    manifest = {
        "version": "clf-001",
        "codebook_hash": "h",
        "method": "head",
        "base_model": "minilm",
        "max_length": 128,
        "seed": 1,
        "codes": codes,
        "thresholds": [0.5, 0.5],
    }
    split = {part: {"segments": 1} for part in ("train", "validation", "test")}
    training = {
        "segments": 3,
        "documents": 3,
        "source": source,
        "split": split,
        "positives": dict.fromkeys(codes, 9),
        "too_few_positives": {},
        "fit": {"refit_on_all": True},
    }
    metrics = {"test": {"micro_f1": 1.0, "macro_f1": 1.0, "segments": 1, "per_code": per_code}}
    write_model_card(tmp_path, manifest, training, metrics, load_codebook(CODEBOOK))
    return (tmp_path / "README.md").read_text(encoding="utf-8")


def test_the_model_card_names_its_data_and_labels_figures_on_our_examples(tmp_path) -> None:
    examples = _card(tmp_path, str(PROJECT_ROOT / "examples" / "gold"))
    assert "synthetic example data" in examples and "refit_on_all" in examples
    own = _card(tmp_path, "gold table of /srv/project")
    assert "`gold table of /srv/project`" in own and "synthetic" not in own


def test_the_onnx_check_after_a_refit_is_called_a_runtime_comparison_not_quality() -> None:
    from pipeline.classifier.provenance import onnx_line

    check = {"macro_f1": 0.83, "fp32_macro_f1": 0.9, "same_decisions": 0.965}
    assert "held-out test split" in onnx_line(check)
    learned = onnx_line({**check, "segments_learned": True})
    assert "not held-out quality" in learned and "96.5% identical decisions" in learned
