"""Pre-labelling on Ray (`culturecode prelabel --engine ray`): the int8 ONNX scorer in a Ray Data actor pool.

The run goes through the one pre-labelling path (pipeline/labellers/run.py): segments still unscored are read
from the workspace in chunks (`classifier.chunk_size`, keyset pagination), and each chunk's predictions are
written in one transaction, so an interrupted run keeps whole chunks and a rerun resumes. What changes is who
scores: up to `ray.window` segments at a time become a Ray Dataset of chunks, and `map_batches` hands each
chunk to an actor that loaded the model once. A chunk is scored whole, with the same length-sorted forward
passes as in-process, so the int8 model (whose activation scales depend on the batch) gives the same scores.

The model reaches the actors as a path on a local Ray (same machine, same files) and as the files' bytes in
the object store on a cluster (`ray.address`), leaving out the torch weights the ONNX copy does not need.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.classifier.onnx import ONNX_FILE
from pipeline.classifier.predict import ClassifierLabeller, PrelabelReport, prediction_rows, score_unscored
from pipeline.config import Codebook, RaySettings, Settings
from pipeline.errors import CultureCodeError
from pipeline.labellers.base import LabelContext
from pipeline.labellers.run import LabelRun
from pipeline.store import Segment, Store
from pipeline.store.predictions import PredictionRow

log = logging.getLogger(__name__)

# Test hook (fault injection): an actor raises after scoring this many chunks, as a crashed worker would.
FAIL_AFTER_ENV = "CULTURECODE_RAY_FAIL_AFTER"
# With it set to "kill", the actor's process kills itself instead (SIGKILL, as the OOM killer would).
FAIL_MODE_ENV = "CULTURECODE_RAY_FAIL_MODE"
# A worker process that dies (OOM killer, a crash) is restarted and its chunk retried this many times, no more:
# Ray Data's default (forever) would loop on a chunk that kills every worker that scores it.
WORKER_RESTARTS = 2
WEIGHTS_SUFFIX = ".safetensors"  # the torch weights: the ONNX copy holds everything the actors need


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is an extra of the ray package
    except ImportError:
        raise CultureCodeError(
            "--engine ray needs Ray: pip install 'culturecode[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


@contextmanager
def ray_cluster(cfg: RaySettings) -> Iterator[dict[str, Any]]:
    """A connection to Ray for the run: the cluster at `cfg.address`, else a local Ray started now and shut down
    after. A Ray already connected in this process (a notebook, a test) is used as it is and left running."""
    ray = import_ray()
    if cfg.address is not None:
        check_reachable(cfg.address)
    if ray.is_initialized():
        yield {"address": "connected", "ship": "path" if cfg.address is None else "bytes"}
        return
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "include_dashboard": False}
    if cfg.address is None:
        options["num_cpus"] = cfg.num_cpus or os.cpu_count() or 1
    try:
        ray.init(address=cfg.address, **options)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError, ... here
        where = f"the Ray cluster at {cfg.address}" if cfg.address else "a local Ray"
        raise CultureCodeError(f"cannot start or reach {where}: {str(exc).splitlines()[0][:160]}") from None
    try:
        yield {"address": cfg.address or "local", "ship": "path" if cfg.address is None else "bytes"}
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A one-line error now for a cluster address nothing answers at (Ray itself retries for minutes)."""
    import socket

    rest = address.removeprefix("ray://")
    if rest == "auto" or ":" not in rest:  # auto: the cluster `ray start` recorded on this machine (Ray checks)
        return
    host, _, port = rest.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise CultureCodeError(
            f"cannot reach the Ray cluster at {address} ({exc}); check ray.address or --ray-address"
        ) from None


def actor_count(cfg: RaySettings) -> int:
    """`ray.actors`, else as many actors of `cpus_per_actor` CPUs as the cluster has (at least one)."""
    if cfg.actors:
        return cfg.actors
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus // cfg.cpus_per_actor)


def model_files(path: Path) -> dict[str, bytes]:
    """{relative path: bytes} of a version folder, less the torch weights (for actors on other machines)."""
    return {
        str(f.relative_to(path)): f.read_bytes()
        for f in sorted(path.rglob("*"))
        if f.is_file() and not f.name.endswith(WEIGHTS_SUFFIX)
    }


class ChunkScorer:
    """A Ray Data actor: loads the tokenizer and the int8 ONNX model once, then scores one chunk per call."""

    def __init__(self, model: Any, threads: int, batch_size: int, max_length: int):
        from pipeline.classifier.encoder import load_tokenizer
        from pipeline.classifier.onnx import OnnxScorer

        folder = Path(model) if isinstance(model, str) else self._unpack(model)
        self.scorer = OnnxScorer(folder / ONNX_FILE, load_tokenizer(str(folder)), threads=threads)
        self.batch_size, self.max_length = batch_size, max_length
        self.fail_after = int(os.environ.get(FAIL_AFTER_ENV) or 0)
        self.calls = 0

    def _unpack(self, shipped: list) -> Path:
        import ray

        self._tmp = tempfile.TemporaryDirectory(prefix="culturecode-model-")  # removed with the actor
        folder = Path(self._tmp.name)
        for name, data in ray.get(shipped[0]).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        self.calls += 1
        if self.fail_after and self.calls > self.fail_after:
            if os.environ.get(FAIL_MODE_ENV) == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"{FAIL_AFTER_ENV}: failing after {self.fail_after} chunk(s)")
        # batch_size=1: one chunk per call, scored whole (the in-process forward passes)
        probs = [self.scorer.predict_proba(list(texts), self.batch_size, self.max_length) for texts in batch["texts"]]
        return {"chunk": batch["chunk"], "probs": np.stack(probs)}


def windows(chunks: Iterator[list[Segment]], size: int) -> Iterator[list[list[Segment]]]:
    """Consecutive chunks grouped until they hold `size` segments (at least one chunk per window)."""
    window: list[list[Segment]] = []
    held = 0
    for chunk in chunks:
        window.append(chunk)
        held += len(chunk)
        if held >= size:
            yield window
            window, held = [], 0
    if window:
        yield window


class RayClassifierLabeller:
    """The classifier labeller (int8 ONNX) with its chunks scored by a Ray actor pool."""

    def __init__(self, context: LabelContext, ship: str):
        import ray

        self.local = ClassifierLabeller(context)  # the model, its thresholds and calibration, exactly as in-process
        self.name, self.kind = self.local.name, self.local.kind
        self.version, self.batch_size = self.local.version, self.local.batch_size
        self.runtime, self.device = "onnx", "cpu"
        self.cfg, self.classifier = context.settings.ray, context.settings.classifier
        path = self.local.loaded.path
        self.model: Any = str(path) if ship == "path" else [ray.put(model_files(path))]
        self.actors = actor_count(self.cfg)

    def label(self, segments: list[Segment]) -> list[PredictionRow]:
        return next(self.label_chunks(iter([segments])))[1]

    def label_chunks(self, chunks: Iterator[list[Segment]]) -> Iterator[tuple[list[Segment], list[PredictionRow]]]:
        """Each chunk with its rows, as the actors finish them; one Ray Dataset per window of chunks."""
        for window in windows(chunks, self.cfg.window):
            pending = dict(enumerate(window))
            for index, probs in self._score(pending):
                segments = pending.pop(index)
                yield segments, prediction_rows(self.local.loaded, segments, probs)

    def _score(self, chunks: dict[int, list[Segment]]) -> Iterator[tuple[int, Any]]:
        import ray

        items = [{"chunk": i, "texts": [s.text for s in chunk]} for i, chunk in chunks.items()]
        # the test hooks reach the actors on any cluster
        hooks = {name: os.environ[name] for name in (FAIL_AFTER_ENV, FAIL_MODE_ENV) if os.environ.get(name)}
        runtime_env = {"env_vars": hooks} if hooks else None
        with warnings.catch_warnings():  # Ray 2.60 has no named parameter for the restarts yet
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            dataset = self._dataset(ray, items, runtime_env)
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                yield from zip((int(i) for i in batch["chunk"]), batch["probs"], strict=True)
        except (ray.exceptions.RayError, RuntimeError) as exc:
            raise CultureCodeError(
                f"scoring on Ray failed ({_reason(exc)}); the chunks written so far are kept: rerun to resume"
            ) from exc

    def _dataset(self, ray: Any, items: list[dict[str, Any]], runtime_env: dict[str, Any] | None) -> Any:
        return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ChunkScorer,
            batch_size=1,
            batch_format="numpy",
            # from one actor up: a busy cluster (or a pool still winding down) does not hold the window up
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=min(self.actors, len(items))),
            num_cpus=self.cfg.cpus_per_actor,
            fn_constructor_kwargs={
                "model": self.model,
                "threads": self.cfg.cpus_per_actor,
                "batch_size": self.classifier.inference_batch_size,
                "max_length": self.classifier.max_length,
            },
            runtime_env=runtime_env,
            max_restarts=WORKER_RESTARTS,
            max_task_retries=WORKER_RESTARTS,
        )

    def model_record(self) -> None:
        return None

    def report(self, run: LabelRun) -> PrelabelReport:
        report = self.local.report(run)
        report.runtime = f"onnx on Ray, {self.actors} actor(s)"
        return report


def _reason(exc: BaseException) -> str:
    """Why scoring stopped, in a few words: a worker process that kept dying, else the worker's own error."""
    import ray

    if isinstance(exc, ray.exceptions.ActorDiedError):
        return f"a Ray worker process died {WORKER_RESTARTS + 1} times: out of memory, or killed"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    """The failing worker's own error line out of Ray's wrapped traceback (else the first line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit)\b.*: ", line)]
    return (raised[0] if raised else lines[0] if lines else type(exc).__name__)[:200]


def prelabel_on_ray(
    store: Store,
    settings: Settings,
    codebook: Codebook,
    model_version: str | None = None,
    show_progress: bool = True,
    segment_ids: list[str] | None = None,
) -> PrelabelReport:
    """`classifier.prelabel` with the int8 ONNX scorer in a Ray actor pool; the same rows are written."""
    _configure_ray_data(show_progress)
    with ray_cluster(settings.ray) as cluster, _raylet_notices_to_log():
        context = LabelContext(store, settings, codebook, model_version, {"runtime": "onnx"}, show_progress)
        labeller = RayClassifierLabeller(context, cluster["ship"])
        return score_unscored(labeller, context, segment_ids, engine="ray", ray=cluster["address"])


@contextmanager
def _raylet_notices_to_log() -> Iterator[None]:
    """Ray's driver prints the raylet's notices (a worker died, its task is retried) on stdout, where `--json`
    output goes. During the run they go to the debug log: a worker Ray restarts is Ray's business, and a run
    that fails for it ends with our one-line error. (Ray has no setting for this; the hook is a private one.)"""
    try:
        from ray._private import worker

        shown = worker.print_to_stdstream
    except (ImportError, AttributeError):  # another Ray: its notices are shown
        yield
        return

    def route(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            shown(data, ignore_prefix)
            return
        for line in data.get("lines", []):
            log.debug("ray: %s", line)

    worker.print_to_stdstream = route
    try:
        yield
    finally:
        worker.print_to_stdstream = shown


def _configure_ray_data(show_progress: bool) -> None:
    """Our progress bar is the one shown: Ray Data's bars and execution logs stay quiet."""
    import_ray()
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a failed run is our one-line error, no traceback
