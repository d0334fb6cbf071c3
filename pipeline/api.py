"""The public surface for Python users: a workspace, its data as pandas objects, its stages as methods.

    from pipeline.api import Workspace

    ws = Workspace("workspace")                  # a folder made by `culturecode ingest` (or Workspace.create)
    ws.segments()                                # pandas.DataFrame, one row per segment
    agreement = ws.agreement()                   # per code and overall, with 95% bootstrap CIs
    agreement.per_code                           # pandas.DataFrame
    agreement.plot()                             # matplotlib Figure
    ws.gold()                                    # pandas.DataFrame; ws.gold_dataset(): datasets.Dataset

Every method calls the stage function the matching command calls (`pipeline.agreement`, `pipeline.gold`,
`pipeline.ingest`, `pipeline.classifier`): figures are the same as on the command line. Each call opens the
workspace's database for its own duration, so a notebook never holds it between cells; methods that write take
the workspace lock like a command does. pandas, datasets, matplotlib and torch are imported by the methods that
need them, so `import pipeline` stays light.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import CultureCodeError

if TYPE_CHECKING:
    import datasets
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from pipeline.config import Codebook, Settings
    from pipeline.gold.adjudicate import AdjudicationReport
    from pipeline.ingest import IngestReport
    from pipeline.ingest.labelled import LabelledImport, LabelledRow
    from pipeline.store import Store

__all__ = ["Agreement", "ModelInfo", "Workspace"]

# the per-code coefficients of the agreement report, in the order of `culturecode agreement`'s table
_PER_CODE = ("percent_agreement", "cohen_kappa_mean", "fleiss_kappa", "krippendorff_alpha", "gwet_ac1")


@dataclass(frozen=True)
class Agreement:
    """The agreement report of a workspace (`culturecode agreement`): `report` is the JSON the command writes."""

    report: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        """Segments with at least one annotation."""
        return int(self.report["n_items"])

    @property
    def annotators(self) -> list[str]:
        return list(self.report["annotators"])

    @property
    def summary(self) -> str:
        """One sentence: which codes are reliable, tentative, unreliable or undefined (Krippendorff's alpha)."""
        return str(self.report["summary"]["text"])

    @property
    def per_code(self) -> pd.DataFrame:
        """One row per code (index: code id): percent agreement, mean Cohen's kappa, Fleiss' kappa, Krippendorff's
        alpha with its 95% bootstrap CI (`alpha_ci_low`, `alpha_ci_high`), Gwet's AC1, the units rated, the share
        of decisions that chose the code, the alpha band and why a coefficient is undefined (None if none is)."""
        import pandas as pd

        rows = []
        for code, stats in self.report["codes"].items():
            ci = stats["krippendorff_alpha_ci"] or [None, None]
            rows.append(
                {
                    "code": code,
                    "name": stats["name"],
                    **{key: stats[key] for key in _PER_CODE},
                    "alpha_ci_low": ci[0],
                    "alpha_ci_high": ci[1],
                    "n_units": stats["n_units"],
                    "prevalence": stats["prevalence"],
                    "alpha_band": stats["interpretation"]["krippendorff_alpha"],
                    "undefined_reason": stats["undefined_reason"],
                }
            )
        return pd.DataFrame(rows).set_index("code")

    @property
    def overall(self) -> pd.DataFrame:
        """One row per coefficient over the whole label set (Krippendorff's alpha with MASI and Jaccard distance,
        exact match; the multi-category coefficients too when the codebook is single-choice): `value`, `band`,
        `ci_low`/`ci_high` where the report has a CI, and `undefined_reason`."""
        import pandas as pd

        overall = self.report["overall"]
        ci = overall.get("krippendorff_alpha_ci") or [None, None]
        rows = [
            {
                "coefficient": name,
                "value": overall[name],
                "band": band,
                "ci_low": ci[0] if name == "krippendorff_alpha_nominal" else None,
                "ci_high": ci[1] if name == "krippendorff_alpha_nominal" else None,
                "undefined_reason": overall["undefined_reasons"].get(name),
            }
            for name, band in overall["interpretation"].items()
        ]
        return pd.DataFrame(rows).set_index("coefficient")

    @property
    def pairwise_kappa(self) -> pd.DataFrame:
        """Annotator x annotator Cohen's kappa (mean over codes)."""
        import pandas as pd

        names = self.report["pairwise_kappa"]["annotators"]
        return pd.DataFrame(self.report["pairwise_kappa"]["matrix"], index=names, columns=names, dtype=float)

    def plot(self, *, ax: Axes | None = None) -> Figure:
        """Krippendorff's alpha per code with its 95% CI (the report's first figure); on `ax` when given."""
        from pipeline.agreement.plots import alpha_figure

        return alpha_figure(self.report, ax=ax)


@dataclass(frozen=True)
class ModelInfo:
    """One classifier version (`culturecode models show`): how it was trained and its held-out figures."""

    version: str
    is_current: bool
    created_at: str
    method: str | None
    base_model: str | None
    thresholds: dict[str, float]
    micro_f1: float | None
    macro_f1: float | None
    test: dict[str, Any]  # the held-out test split's figures as metrics.json has them ({} when it has none)
    details: dict[str, Any] = field(repr=False)  # everything `models show --json` prints

    @property
    def per_code(self) -> pd.DataFrame:
        """Held-out precision, recall, F1 (and kappa where measured) per code, with each code's threshold."""
        import pandas as pd

        frame = pd.DataFrame.from_dict(self.test.get("per_code", {}), orient="index")
        frame.index.name = "code"
        frame["threshold"] = pd.Series(self.thresholds, dtype=float)
        return frame


class Workspace:
    """One annotation project's folder (its `culturecode.db`, models/, reports/, exports/).

    `Workspace(path)` opens an existing workspace; `Workspace.create(path)` makes a new one. `config` is a settings
    file (default: configs/pipeline.yaml) and `codebook` a codebook YAML (default: the one the settings name).
    """

    def __init__(self, path: str | Path, *, config: str | Path | None = None, codebook: str | Path | None = None):
        self.path = Path(path)
        self._config = config
        self._codebook = codebook
        if not (self.path / "culturecode.db").is_file():
            raise CultureCodeError(
                f"{self.path}: not a workspace (no culturecode.db); use Workspace.create({str(self.path)!r}) "
                f"or `culturecode ingest PATH --workspace {self.path}`"
            )

    @classmethod
    def create(
        cls, path: str | Path, *, config: str | Path | None = None, codebook: str | Path | None = None
    ) -> Workspace:
        """A new workspace at `path` (or the one already there) that records the codebook of the settings."""
        from pipeline.store import Store
        from pipeline.store.codebooks import adopt_codebook

        Store(path, create=True).close()
        workspace = cls(path, config=config, codebook=codebook)
        with workspace.store(write="create") as store:
            adopt_codebook(store, workspace.codebook)
        return workspace

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # ------------------------------------------------------------------ settings and store

    def settings(self, **overrides: Any) -> Settings:
        """The settings in effect (the settings file, this workspace, the codebook), with dotted overrides applied
        (`ws.settings(**{"agreement.bootstrap": 200})`)."""
        from pipeline.config import load_settings

        extra = {"workspace": str(self.path), "codebook": str(self._codebook) if self._codebook else None}
        return load_settings(self._config, {**extra, **overrides})

    @cached_property
    def codebook(self) -> Codebook:
        """The codebook (validated) the settings name."""
        return self.settings().load_codebook()

    @contextmanager
    def store(self, *, write: str | None = None) -> Iterator[Store]:
        """The workspace's store for a `with` block; `write`: hold the workspace lock under this name meanwhile."""
        from pipeline.store import Store

        settings = self.settings()
        lock_as = f"python: {write}" if write else None
        with Store(
            self.path, create=False, backups=settings.backups, lock_as=lock_as, busy_wait=settings.busy_wait
        ) as s:
            yield s

    # ------------------------------------------------------------------ ingest

    def ingest(self, paths: Iterable[str | Path], *, replace: bool = False) -> IngestReport:
        """Read transcripts (files or folders) into segments, as `culturecode ingest` does."""
        from pipeline.ingest import find_transcripts, ingest
        from pipeline.store.codebooks import adopt_codebook

        paths = [Path(p) for p in paths]
        find_transcripts(paths)  # bad paths fail before anything is written
        with self.store(write="ingest") as store:
            adopt_codebook(store, self.codebook)
            return ingest(store, paths, self.settings().ingest, replace=replace, show_progress=False)

    def import_labelled(
        self, source: str | Path | pd.DataFrame | Iterable[Mapping[str, Any]], *, annotator: str
    ) -> LabelledImport:
        """Add turns labelled outside Label Studio as segments and `annotator`'s annotations.

        `source`: a JSONL file in the examples/gold format, a DataFrame or an iterable of mappings, each row with
        `text`, `document`, `codes` (a list of code ids) and optionally `speaker`. See `pipeline.ingest.labelled`.
        """
        from pipeline.ingest.labelled import ingest_labelled, read_labelled

        if isinstance(source, str | Path):
            rows: Iterable[Mapping[str, Any] | LabelledRow] = read_labelled(source)
            name = str(source)
        elif hasattr(source, "to_dict"):
            rows, name = source.to_dict("records"), "a DataFrame"
        else:
            rows, name = source, "labelled rows"
        with self.store(write="import labelled") as store:
            return ingest_labelled(store, rows, codebook=self.codebook, annotator=annotator, source=name)

    # ------------------------------------------------------------------ reading

    def segments(self, *, document: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """The active segments in document order: id, document, position, speaker, text, start, end."""
        import pandas as pd

        with self.store() as store:
            segments = store.segments(document, limit)
        columns = ["id", "document", "position", "speaker", "text", "start", "end"]
        rows = [(s.id, s.document_id, s.position, s.speaker, s.text, s.start_time, s.end_time) for s in segments]
        return pd.DataFrame(rows, columns=columns)

    def annotations(
        self,
        *,
        annotators: list[str] | None = None,
        documents: list[str] | None = None,
        since: str | None = None,
    ) -> pd.DataFrame:
        """The annotations that count as ratings (kept, annotation projects), oldest edit first: annotation id,
        segment, document, annotator, codes (a list), the pre-label version shown, and the text."""
        import pandas as pd

        from pipeline.store.annotations import live_annotations

        with self.store() as store:
            found = live_annotations(store, annotators, documents, since)
        columns = ["annotation_id", "segment_id", "document", "annotator", "codes", "prediction_version", "text"]
        rows = [
            (a.annotation_id, a.segment_id, a.document_id, a.annotator, a.codes, a.prediction_version, a.text)
            for a in found
        ]
        return pd.DataFrame(rows, columns=columns)

    # ------------------------------------------------------------------ agreement and gold

    def agreement(
        self,
        *,
        annotators: list[str] | None = None,
        codes: list[str] | None = None,
        since: str | None = None,
        documents: list[str] | None = None,
        bootstrap: int | None = None,
        seed: int | None = None,
        out_dir: str | Path | None = None,
    ) -> Agreement:
        """Inter-annotator agreement per code and over the label set, with 95% bootstrap CIs, as `culturecode
        agreement` computes it (the same filters). `bootstrap`/`seed` default to the settings' agreement section;
        `out_dir`: also write agreement-<date>.{html,md,json} there (default: write no files)."""
        from pipeline.agreement import agreement_report

        settings = self.settings(**{"agreement.bootstrap": bootstrap, "agreement.seed": seed})
        with self.store(write="agreement") as store:
            result = agreement_report(
                store,
                settings,
                self.codebook,
                annotators=annotators,
                codes=codes,
                since=since,
                documents=documents,
                out_dir=Path(out_dir) if out_dir is not None else None,
            )
        return Agreement(result.report, result.paths)

    def adjudicate(self, *, method: str = "majority") -> AdjudicationReport:
        """Turn the annotations into gold labels (`culturecode adjudicate`): majority, dawid-skene or adjudicator."""
        from pipeline.gold import adjudicate

        with self.store(write="adjudicate") as store:
            return adjudicate(store, self.codebook, method)

    def _gold_rows(self, keep_annotator_ids: bool) -> list[dict[str, Any]]:
        from pipeline.gold.export import gold_records

        with self.store() as store:
            rows, _, _ = gold_records(store, self.settings(), self.codebook, keep_annotator_ids=keep_annotator_ids)
        return rows

    def gold(self, *, keep_annotator_ids: bool = False) -> pd.DataFrame:
        """The gold dataset as `culturecode export` writes it, one row per gold segment: id, text, document,
        speaker, gold_codes, labels (multi-hot in codebook order), every annotator's codes, per-item agreement,
        the split (by document). Annotators are pseudonymised unless `keep_annotator_ids`."""
        import pandas as pd

        return pd.DataFrame(self._gold_rows(keep_annotator_ids))

    def gold_dataset(self, *, split: str | None = None, keep_annotator_ids: bool = False) -> datasets.Dataset:
        """The gold dataset as a Hugging Face `datasets.Dataset` with the export's features (`labels` is the
        multi-hot vector); only one split ('train', 'validation', 'test') when given."""
        from pipeline.gold.export import SPLITS, to_dataset

        if split is not None and split not in SPLITS:
            raise CultureCodeError(f"split {split!r}: use one of {', '.join(SPLITS)}")
        return to_dataset(self._gold_rows(keep_annotator_ids), self.codebook, split=split)

    # ------------------------------------------------------------------ models

    @property
    def model_version(self) -> str | None:
        """The current classifier version ('clf-003'), None before `culturecode train`."""
        from pipeline.store.models import current_model

        with self.store() as store:
            return current_model(store, "classifier")

    def model(self, *, version: str | None = None) -> ModelInfo:
        """A classifier version (default: the current one) with its settings and held-out figures, as `culturecode
        models show` reads them. Loads torch (the classifier package)."""
        from pipeline import classifier

        with self.store() as store:
            info = classifier.show_model(store, version)
        manifest, test = info.get("classifier", {}), info.get("metrics", {}).get("test") or {}
        codes, thresholds = manifest.get("codes", []), manifest.get("thresholds", [])
        return ModelInfo(
            version=info["version"],
            is_current=bool(info["is_current"]),
            created_at=info["created_at"],
            method=manifest.get("method"),
            base_model=manifest.get("base_model"),
            thresholds={c: float(t) for c, t in zip(codes, thresholds, strict=False)},
            micro_f1=test.get("micro_f1"),
            macro_f1=test.get("macro_f1"),
            test=test,
            details=info,
        )
