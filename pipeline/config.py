"""Settings (configs/pipeline.yaml) and the codebook schema, both validated.

Errors name the file, the code and the field so a user can fix them without reading code.
Settings come from the file; flags override them through `load_settings(overrides=...)`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator
from pydantic_core import ErrorDetails

from pipeline.errors import CultureCodeError, shorten

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shipped_roots() -> list[Path]:
    """Where the shipped `configs/` and `prompts/` live, first match wins: the checkout's root (a source tree
    or an editable install), then the copies inside the installed package (the wheel maps them to
    pipeline/configs and pipeline/prompts)."""
    roots = [PROJECT_ROOT] if (PROJECT_ROOT / "pyproject.toml").is_file() else []
    package = importlib.resources.files("pipeline")
    if isinstance(package, Path):  # a zip import has no real paths; pip installs wheels as plain files
        roots.append(package)
    return roots


def shipped_file(relative: str | Path) -> Path:
    """`configs/...` or `prompts/...` as shipped with culturecode (checkout first, else the installed package)."""
    for root in shipped_roots():
        if (root / relative).exists():
            return root / relative
    return PROJECT_ROOT / relative


DEFAULT_CONFIG = shipped_file("configs/pipeline.yaml")
DEFAULT_CODEBOOK = shipped_file("configs/codebooks/police_culture.yaml")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- codebook


class Code(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    name: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    include: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    examples: list[str] = Field(min_length=1)
    hint: str = Field(min_length=1, max_length=200)


class Codebook(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    version: str = "1"
    description: str = ""
    single_choice: bool = False
    codes: list[Code] = Field(min_length=2, max_length=200)

    @model_validator(mode="after")
    def _unique_ids(self) -> "Codebook":
        seen: set[str] = set()
        for code in self.codes:
            if code.id in seen:
                raise ValueError(f"duplicate code id '{code.id}'")
            seen.add(code.id)
        return self

    @property
    def code_ids(self) -> list[str]:
        return [c.id for c in self.codes]

    @property
    def content_hash(self) -> str:
        """Stable hash of everything that defines the labels; stored wherever labels are."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def code(self, code_id: str) -> Code:
        for c in self.codes:
            if c.id == code_id:
                return c
        raise CultureCodeError(f"code '{code_id}' is not in codebook '{self.id}'")

    def check_codes(self, codes: list[str], where: str) -> list[str]:
        unknown = sorted(set(codes) - set(self.code_ids))
        if unknown:
            raise CultureCodeError(
                f"{where}: unknown code(s) {', '.join(shorten(c) for c in unknown[:5])}"
                f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''}; the codebook '{self.id}' has "
                f"{', '.join(self.code_ids)}"
            )
        return [c for c in self.code_ids if c in set(codes)]


MAX_YAML_DEPTH = 100  # nesting a settings file or codebook may have; the deepest shipped one has 4


class _DepthLimitedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses nesting deeper than MAX_YAML_DEPTH: PyYAML composes nodes recursively, so
    `a: [[[[...` 100,000 deep was a RecursionError traceback instead of a message (issue 26 #4)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str) -> Any:
    """yaml.safe_load with a bound on nesting (a yaml.YAMLError beyond MAX_YAML_DEPTH levels)."""
    loader = _DepthLimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_yaml(path: Path, what: str) -> Any:
    if not path.exists():
        raise CultureCodeError(f"{path}: {what} file not found")
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CultureCodeError(f"{path}:{line} is not valid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise CultureCodeError(f"{path}: {what} is not UTF-8 text") from None
    except IsADirectoryError:
        raise CultureCodeError(f"{path}: is a folder; give the {what} file itself") from None
    except OSError as exc:
        raise CultureCodeError(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None


def _describe_codebook_error(raw: Any, err: ErrorDetails) -> str:
    loc = list(err["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "codes" and isinstance(loc[1], int):
        codes = raw.get("codes") if isinstance(raw, dict) else None
        code_id = None
        if isinstance(codes, list) and loc[1] < len(codes) and isinstance(codes[loc[1]], dict):
            code_id = codes[loc[1]].get("id")
        where = f"code '{code_id}' (codes[{loc[1]}])" if code_id else f"codes[{loc[1]}]"
        loc = loc[2:]
    field = ".".join(str(p) for p in loc) or "codes"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "is required"
    return f"{where + ': ' if where else ''}field '{field}' {msg}"


def load_codebook(path: str | Path | None = None) -> Codebook:
    """Load and validate a codebook YAML file; errors name the file, the code and the field."""
    path = Path(path) if path else DEFAULT_CODEBOOK
    raw = _read_yaml(path, "codebook")
    if not isinstance(raw, dict):
        raise CultureCodeError(f"{path}: a codebook must be a YAML mapping with 'id', 'name' and 'codes'")
    try:
        return Codebook.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["loc"] == () and "duplicate code id" in first["msg"]:
            dup = first["msg"].split("'")[1]
            raise CultureCodeError(f"{path}: code '{dup}': field 'id' is duplicated") from None
        raise CultureCodeError(f"{path}: {_describe_codebook_error(raw, first)}") from None


# --------------------------------------------------------------------------- settings


class CsvColumns(Strict):
    text_column: str = "text"
    speaker_column: str | None = "speaker"
    start_column: str | None = "start"
    end_column: str | None = "end"
    delimiter: str | None = None  # None: ',' for .csv, tab for .tsv


class IngestSettings(Strict):
    max_segment_chars: int = Field(600, ge=50, le=100_000)
    language: str = "en"
    csv: CsvColumns = Field(default_factory=CsvColumns)
    pseudonymise: bool = False
    names_file: str | None = None
    skip_bad: bool = False
    # `ingest --replace`: an edited segment's annotations and gold move to its new text when the two
    # are at least this alike (difflib ratio; 0.9 is about one word changed in a 40-character turn)
    carry_over_similarity: float = Field(0.9, ge=0.5, le=1.0)


class StudioSettings(Strict):
    url: str | None = None  # None: the embedded server culturecode starts in the workspace
    host: str = "127.0.0.1"
    port: int = Field(8089, ge=1, le=65535)
    username: str = "admin@culturecode.local"
    api_key_env: str = "LABEL_STUDIO_API_KEY"
    api_key_file: str | None = None  # a 0600 file holding a team server's key (else the env var)
    batch_size: int = Field(1000, ge=1, le=50_000)
    timeout: float = Field(120.0, gt=0)
    start_timeout: float = Field(300.0, gt=0)
    retries: int = Field(5, ge=0, le=20)
    annotator_domain: str = "culturecode.local"
    project_prefix: str = "culturecode"
    # share of segments every annotator codes with no pre-labels (the anchoring check, pipeline/store/blind.py);
    # None: the fraction the workspace was last pushed with (0 at first), so a later push keeps the subset blind
    blind_fraction: float | None = Field(None, ge=0, le=1)
    # share of segments in the audit stream: a stable uniformly random sample coded with pre-labels at random places
    # in the label stream (pipeline/studio/stream.py); None: the fraction last pushed (0 at first)
    audit_fraction: float | None = Field(None, ge=0, le=1)
    # the order Label Studio serves tasks in ("Label All Tasks"): uncertainty = least certain pre-label first
    # or any active-learning strategy (`culturecode next --strategy`): rare, diversity, hybrid, random, ...
    sampling: str = Field("uncertainty", pattern="^[a-z][a-z0-9_-]*$")
    # the embedded server's database: None = SQLite in <workspace>/studio; or postgresql://user[:password]@host[:port]/db
    database: str | None = None

    @field_validator("database")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be null (SQLite) or a postgresql://user@host:port/dbname URL")
        return value

    @field_serializer("database")
    def _masked(self, value: str | None) -> str | None:
        return mask_database_url(value) if value else value  # `config show` never prints the password


def mask_database_url(url: str) -> str:
    """`url` with any password replaced by *** (for status output and messages)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class ClassifierSettings(Strict):
    # 'mpnet' = packaged all-mpnet-base-v2; 'minilm' = packaged all-MiniLM-L6-v2; a local dir; or a hub name
    base_model: str = "mpnet"
    method: str = Field("head", pattern="^(finetune|head)$")
    max_length: int = Field(128, ge=8, le=4096)
    epochs: int = Field(10, ge=1, le=200)
    batch_size: int = Field(16, ge=1, le=1024)
    learning_rate: float = Field(1e-4, gt=0)
    head_learning_rate: float = Field(2e-3, gt=0)
    seed: int = 13
    default_threshold: float = Field(0.5, gt=0, lt=1)
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    early_stopping_patience: int = Field(3, ge=1)
    runtime: str = Field("torch", pattern="^(torch|onnx)$")
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$")  # auto: the GPU when torch sees one (torch runtime)
    head_c: float = Field(0.01, gt=0)  # inverse regularisation of the `head` method's logistic regressions
    head_class_weight: str | None = Field("balanced", pattern="^balanced$")  # or null: unweighted classes
    normalize: bool = True  # L2-normalise the pooled embedding (the head reads unit vectors)
    codebook_features: bool = True  # head: add each segment's similarity to every code's codebook text
    cv_folds: int = Field(5, ge=2, le=20)  # head: thresholds from document-grouped cross-validation
    # head: once its test figures are measured, the version learns from the test documents too (thresholds and
    # admission evidence from grouped CV over all); its reported test figures stay those of the model without them
    refit_on_all: bool = True
    project_weight: float = Field(3.0, ge=1.0, le=100.0)  # a project label counts as this many bundled examples
    calibration_min_labels: int = Field(30, ge=1)  # project labels before thresholds are re-tuned on them
    calibration_min_positives: int = Field(3, ge=1)  # fewer positives (or negatives) and a code keeps the model's
    calibration_prior: float = Field(10.0, ge=0)  # the model's threshold weighs as this many human positives
    min_segments: int = Field(20, ge=5)  # fewer labelled segments than this is refused
    export_onnx: bool = True  # export + int8-quantise each trained version (for --runtime onnx)
    inference_batch_size: int = Field(32, ge=1, le=1024)
    chunk_size: int = Field(2000, ge=1, le=100_000)  # segments read, scored and written per step
    # head method and torch pre-labelling: frozen-encoder vectors cached in the workspace, at most this many rows
    # (least recently used evicted; 0: no cache)
    embedding_cache_rows: int = Field(50_000, ge=0)


class AgreementSettings(Strict):
    bootstrap: int = Field(1000, ge=0, le=100_000)
    seed: int = 7
    export_validation_fraction: float = Field(0.1, ge=0, lt=0.5)
    export_test_fraction: float = Field(0.2, ge=0, lt=0.5)


class FindingsSettings(Strict):
    # `culturecode findings`: the confidence level of every interval, and the fewest random human labels a group
    # needs before it gets an interval ("too few audit labels (n=4; need >= 10)", never a made-up interval)
    level: float = Field(0.95, gt=0.5, lt=1)
    min_labels: int = Field(10, ge=2, le=100_000)


class BackupSettings(Strict):
    keep: int = Field(7, ge=0, le=1000)  # backups kept in <workspace>/backups; 0 = no backups
    every_hours: float = Field(24.0, gt=0)  # a command that writes takes one when the newest is older


class LlmSettings(Strict):
    # an installed LLM backend: local, openai or a plugin's; checked against the labeller registry
    # (pipeline.labellers.registry.check_llm_backend) where it is used and by `config check`
    backend: str = Field("local", pattern=r"^[A-Za-z0-9_.-]+$")
    model: str | None = None  # local: null = the packaged Qwen2.5-Coder-0.5B-Instruct, or a path; openai: its name
    model_dir: str | None = None  # where the local model is unpacked once (null: ~/.cache/culturecode/llm)
    quantize: bool = True  # local: int8 linear layers, ~3x faster on a CPU
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$")  # local: auto = the GPU when torch sees one
    threads: int | None = Field(None, ge=1, le=256)  # local: torch threads (null: torch's default)
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    json_schema: bool = True  # send the answer's JSON schema (constrained decoding) to the endpoint
    prompt: str = "zero_shot"
    prompts_dir: str | None = None  # null: ./prompts when it has the template, else the shipped prompts
    few_shot_examples: int = Field(3, ge=0, le=20)
    context_before: int = Field(1, ge=0, le=10)
    context_after: int = Field(0, ge=0, le=10)
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int = 0
    max_tokens: int = Field(160, ge=16)
    concurrency: int = Field(4, ge=1, le=64)
    timeout: float = Field(60.0, gt=0)
    retries: int = Field(3, ge=0, le=10)
    min_confidence: float = Field(0.5, ge=0, le=1)  # distill: silver labels below this are left out
    price_per_million_input: float = Field(0.0, ge=0)  # for `llm plan` cost estimates of paid endpoints
    price_per_million_output: float = Field(0.0, ge=0)


class AdmissionSettings(Strict):
    """Which codes a model version may pre-tick in Label Studio (docs/admission.md)."""

    enabled: bool = True  # false: every predicted code is pre-ticked, as before admission existed
    # kappa 0.4 is where Landis & Koch's "moderate" agreement begins; below it a pre-ticked code is
    # wrong often enough to pull annotators toward the model
    min_kappa: float = Field(0.4, ge=-1, le=1)
    # human positives and as many negatives the kappa must rest on: with fewer, its 95% interval
    # spans more than 0.4, so a single number says little
    min_evidence: int = Field(20, ge=1)


class RaySettings(Strict):
    """`prelabel --engine ray` (pipeline/classifier/ray_engine.py)."""

    address: str | None = None  # null: a local Ray started for the run; else a cluster ("auto", "ray://host:10001")
    num_cpus: int | None = Field(None, ge=1, le=4096)  # the local Ray's CPUs (null: all of this machine's)
    cpus_per_actor: int = Field(2, ge=1, le=256)  # each scoring actor's CPUs (its ONNX Runtime threads)
    actors: int | None = Field(None, ge=1, le=4096)  # scoring actors (null: as many as the cluster's CPUs allow)
    window: int = Field(50_000, ge=1, le=10_000_000)  # segments handed to Ray at a time (driver memory stays flat)


class LoopSettings(Strict):
    """The live model server (`culturecode serve`, docs/studio.md): Label Studio's ML-backend protocol."""

    host: str = "127.0.0.1"  # only this machine can reach it; Label Studio runs here too
    port: int = Field(9090, ge=1, le=65535)  # label-studio-ml-backend's usual port
    public_url: str | None = None  # the URL Label Studio calls (null: http://<host>:<port>)
    every: int = Field(20, ge=1, le=100_000)  # retrain after this many new, edited or deleted annotations
    debounce_seconds: float = Field(10.0, ge=0, le=3600)  # ... once no annotation came for this long
    method: str = Field("head", pattern="^(finetune|head)$")  # how the loop trains (head: about a minute)
    connect: bool = False  # `push`: connect the model server to each project it creates
    secret_file: str | None = None  # the webhook's shared secret (null: <workspace>/loop-secret, made once)
    start_with_studio: bool = False  # `studio start` starts `culturecode serve` in the background too
    # retrains (serve's and `culturecode retrain`) keep this many of the newest unpromoted versions nothing uses;
    # older ones are pruned (never the current, a once-promoted, a pushed or an annotated-against version)
    keep_unpromoted: int = Field(2, ge=0, le=10_000)
    # limits of the HTTP server: tasks in one /predict, a request body's size, requests handled at once (the rest
    # wait up to a few seconds, then get 503)
    max_tasks: int = Field(200, ge=1, le=100_000)
    max_request_mb: float = Field(8.0, gt=0, le=1024)
    workers: int = Field(8, ge=1, le=256)


class Settings(Strict):
    workspace: str = "workspace"
    codebook: str = "configs/codebooks/police_culture.yaml"
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    studio: StudioSettings = Field(default_factory=StudioSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    agreement: AgreementSettings = Field(default_factory=AgreementSettings)
    findings: FindingsSettings = Field(default_factory=FindingsSettings)
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    backups: BackupSettings = Field(default_factory=BackupSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    busy_wait: float = Field(10.0, ge=0, le=86_400)  # seconds a writing command waits for another one to finish

    @field_validator("workspace", "codebook")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def codebook_path(self) -> Path:
        return resolve_path(self.codebook)

    def load_codebook(self) -> Codebook:
        return load_codebook(self.codebook_path())


def resolve_path(value: str | Path) -> Path:
    """A relative path is taken from the current directory, else from what culturecode ships (`shipped_file`)."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    bundled = shipped_file(path)
    return bundled if bundled.exists() else path


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise CultureCodeError(f"setting '{dotted}': '{key}' is not a section")
    node[keys[-1]] = value


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Read configs/pipeline.yaml (or `path`), then apply flag overrides ('section.key': value)."""
    if path is None:
        local = Path("configs/pipeline.yaml")
        path = local if local.exists() else DEFAULT_CONFIG
    path = Path(path)
    raw = _read_yaml(path, "config") if path.exists() or path != DEFAULT_CONFIG else {}
    raw = raw or {}
    if not isinstance(raw, dict):
        raise CultureCodeError(f"{path}: the config must be a YAML mapping of sections")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = "is not a known setting" if err["type"] == "extra_forbidden" else err["msg"]
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        if field in given:  # a flag's value, not the file's: the file is not to blame (issue 26 #9)
            raise CultureCodeError(f"{field} = {shorten(given[field])} (given as an option): {msg}") from None
        raise CultureCodeError(f"{path}: field '{field}' {msg}") from None
