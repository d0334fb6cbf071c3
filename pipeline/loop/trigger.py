"""When the live loop retrains: after every `loop.every` annotations Label Studio reports, debounced, one at a time.

The count lives in the workspace database (`pipeline/store/loop.py`), so a server killed with -9 and started
again resumes it; the annotations a killed retrain had taken count again. The retrain runs in a background
thread, so the webhook that crossed the threshold returns at once; annotations that arrive meanwhile count
toward the next retrain, which starts when this one ends if enough came. The retrain itself runs in a child
process (`pipeline.loop.isolated`), so the server's memory is the same after it as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipeline.config import Codebook, Settings
from pipeline.store import Store, now
from pipeline.store.loop import finish_retrain, loop_state, note_annotation_events, resume_loop, take_pending

log = logging.getLogger("culturecode.loop")

# a stream of annotations that never pauses for `debounce` seconds still retrains this many debounces after
# the count was reached
MAX_WAIT_FACTOR = 6

OpenStore = Callable[[], Store]
RetrainFn = Callable[[], dict[str, Any]]
RetrainJob = Callable[[Settings, Codebook], dict[str, Any]]  # run in a child process: importable by name


class RetrainTrigger:
    """Counts annotation events and runs `retrain` in the background after every `every` of them, once no
    event has come for `debounce` seconds (at most MAX_WAIT_FACTOR x `debounce` after the count was reached)."""

    def __init__(
        self,
        open_store: OpenStore,
        retrain: RetrainFn,
        every: int,
        debounce: float,
        on_finish: Callable[[dict[str, Any]], None] | None = None,
    ):
        self._open, self._retrain, self._on_finish = open_store, retrain, on_finish
        self.every, self.debounce = every, debounce
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._worker: threading.Thread | None = None
        self._due_since: float | None = None  # when the count first reached `every` (time.monotonic)
        self._idle = threading.Event()
        self._idle.set()

    def start(self) -> int:
        """At server start: resume the stored count (and a killed retrain's annotations); returns it."""
        with self._open() as store:
            pending = resume_loop(store)
        if pending >= self.every:
            self._schedule()
        return pending

    def note(self, keys: Iterable[str]) -> dict[str, Any]:
        """Count changed annotations (Label Studio ids); schedules a retrain when enough are pending."""
        with self._open() as store:
            pending = note_annotation_events(store, list(keys))
        if pending >= self.every:
            self._schedule()
        return {"pending": pending, "every": self.every, "retrain": self.state()}

    def retrain_now(self) -> str:
        """Start a retrain without waiting for the count (Label Studio's 'Start training')."""
        self._schedule(delay=0.0)
        return self.state()

    def state(self) -> str:
        with self._lock:
            return "running" if self._worker is not None else "scheduled" if self._timer is not None else "idle"

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no retrain is scheduled or running; False if `timeout` passed first."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        """Cancel a scheduled retrain (a running one is left to finish or die with the process)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._set_idle_if_quiet()

    # ------------------------------------------------------------------------------------ internals

    def _schedule(self, delay: float | None = None) -> None:
        with self._lock:
            if self._worker is not None:  # the running retrain decides on the next one when it ends
                return
            moment = time.monotonic()
            self._due_since = self._due_since or moment
            if delay is None:
                latest = self._due_since + self.debounce * MAX_WAIT_FACTOR
                delay = max(0.0, min(self.debounce, latest - moment))
            if self._timer is not None:
                self._timer.cancel()
            self._idle.clear()
            self._timer = threading.Timer(delay, self._begin)
            self._timer.daemon = True
            self._timer.start()

    def _begin(self) -> None:
        with self._lock:
            if self._timer is not threading.current_thread() or self._worker is not None:
                return  # a newer timer replaced this one
            self._timer, self._due_since = None, None
            self._worker = threading.Thread(target=self._run, name="culturecode-retrain", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        record: dict[str, Any] = {"started_at": now()}
        try:
            with self._open() as store:
                record["annotations"] = len(take_pending(store))
            record.update(self._retrain() or {})
        except Exception as exc:  # a failed retrain is recorded; the server goes on serving predictions
            log.exception("retrain failed")
            record["error"] = f"{type(exc).__name__}: {exc}"
        pending = 0
        try:
            with self._open() as store:
                finish_retrain(store, record)
                pending = len(loop_state(store)["pending"])
            if self._on_finish is not None:
                self._on_finish(record)
        finally:
            with self._lock:
                self._worker = None
                if pending < self.every:  # else the next retrain is scheduled below: not idle in between
                    self._set_idle_if_quiet()
        if pending >= self.every:
            self._schedule()

    def _set_idle_if_quiet(self) -> None:
        if self._worker is None and self._timer is None:
            self._idle.set()


def workspace_retrain(settings: Settings, codebook: Codebook, job: RetrainJob | None = None) -> RetrainFn:
    """The loop's retrain: `retrain_job` (or `job`, a module-level function of the same shape) in a child process
    (`pipeline.loop.isolated`), so that the encoder, the training and the pre-labelling leave nothing in the
    server's memory when it ends. Returns what the loop records."""
    from pipeline.loop.isolated import run_isolated

    chosen = job or retrain_job
    return lambda: run_isolated(chosen, settings, codebook)


def retrain_job(settings: Settings, codebook: Codebook) -> dict[str, Any]:
    """One retrain: `flows.retrain` (pull -> adjudicate -> train with `loop.method` -> evaluate -> promote only if
    better -> pre-label the unannotated segments -> push their new predictions), holding the workspace lock while
    it runs. Returns what the loop records."""
    from pipeline.flows import retrain
    from pipeline.store.gold import count_gold
    from pipeline.store.models import set_model_metric

    loop_settings = settings.model_copy(
        update={"classifier": settings.classifier.model_copy(update={"method": settings.loop.method})}
    )
    with Store(
        Path(settings.workspace),
        create=False,
        backups=settings.backups,
        lock_as="serve retrain",
        busy_wait=settings.busy_wait,
    ) as store:
        result = retrain(store, loop_settings, codebook, show_progress=False)
        labels = count_gold(store)
        new = result.new["model_version"]
        summary = {
            "model_version": new,
            "method": settings.loop.method,
            "labels": labels,
            "macro_f1": result.new["macro_f1"],
            "previous": (result.current or {}).get("model_version"),
            "previous_macro_f1": (result.current or {}).get("macro_f1"),
            "promoted": result.promoted,
            "current_model": result.current_model,
            "rescored": result.prelabel.scored,
            "trained": result.trained,  # False: nothing new since that version; none made
            "pruned": [r["version"] for r in result.pruned.removed] if result.pruned else [],
            "message": result.message,
        }
        with store.transaction():
            set_model_metric(store, new, "loop", {k: summary[k] for k in ("labels", "method", "promoted")})
    return summary
