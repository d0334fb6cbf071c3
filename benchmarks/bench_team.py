"""Benchmark: a coding team against Label Studio on PostgreSQL vs on SQLite, in one run.

    .venv/bin/python benchmarks/bench_team.py                    # 10 annotators x 30 tasks each
    .venv/bin/python benchmarks/bench_team.py --annotators 6 --tasks 20

Starts a throwaway PostgreSQL cluster (Debian's binaries, tests/pg_cluster.py; durable settings: fsync on)
and two embedded Label Studios, one on that cluster (`studio.database`) and one on SQLite. On each: one
project per annotator (`push --annotators`), then every annotator's thread submits its tasks through the
API as fast as the server accepts them while a push (new segments) and a pull run, then a last pull.
Prints per database: annotations/s accepted, errors (refused or failed requests), lost (accepted but not in
Label Studio's count, or not pulled into the workspace; must be 0), and the PG/SQLite throughput ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import Settings, load_settings
from pipeline.store import open_store
from pipeline.studio import add_annotators, connect, pull, push, server, studio_status
from tests import factory, pg_cluster
from tests.integration.conftest import StudioServer, make_workspace

RESULT = [{"from_name": "codes", "to_name": "text", "type": "choices", "value": {"choices": ["carrot"]}}]


@dataclass
class Outcome:
    database: str
    accepted: int
    errors: int
    seconds: float
    in_studio: int
    pulled: int

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    @property
    def lost_in_studio(self) -> int:
        return self.accepted - self.in_studio

    @property
    def lost_in_pull(self) -> int:
        return self.in_studio - self.pulled

    @property
    def lost(self) -> int:
        return abs(self.lost_in_studio) + abs(self.lost_in_pull)


def start_studio(root: Path, database: str | None) -> StudioServer:
    overrides = {"workspace": str(root / "server"), "studio.port": pg_cluster.free_port(), "studio.database": database}
    settings = load_settings(overrides=overrides)
    t0 = time.perf_counter()
    info = server.start_server(settings)
    print(f"Label Studio on {info.database} started in {time.perf_counter() - t0:.0f} s", flush=True)
    key_file = root / "api_key"
    key = server.credentials(settings)["api_key"]
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return StudioServer(info.url, key, settings, key_file)


def _tasks_of(store, email_by_project: dict[int, str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for r in store.conn.execute("SELECT project_id, task_id FROM tasks ORDER BY task_id"):
        found.setdefault(email_by_project[r[0]], []).append(r[1])
    return found


def run_team(srv: StudioServer, label: str, work: Path, annotators: int, tasks: int) -> Outcome:
    """Push `tasks` segments to each of `annotators` projects, then submit them all at once (with a push and a pull
    running) and count what was accepted, refused and kept."""
    workspace = work / "ws"
    store = make_workspace(workspace, n_docs=tasks, turns=1)
    settings: Settings = srv.workspace_settings(workspace)
    book = settings.load_codebook()
    people = add_annotators(connect(settings), settings, [f"team-{uuid.uuid4().hex[:8]}" for _ in range(annotators)])
    report = push(store, settings, book, annotators=[p.email for p in people], show_progress=False)
    tasks_of = _tasks_of(store, {p.id: p.annotator for p in report.projects if p.annotator})
    sessions = {p.email: srv.login(p.email, p.password) for p in people}
    factory.add_documents(store, {"late": [f"Late turn {t}: the hostel bed again." for t in range(5)]})
    accepted, errors, lock = [0], [0], threading.Lock()

    def annotate_all(email: str) -> None:
        for task_id in tasks_of[email]:
            try:
                ok = sessions[email].post(f"/api/tasks/{task_id}/annotations/", json={"result": RESULT}).status_code
            except Exception:  # a failed request counts as an error, like a refused one
                ok = 0
            with lock:
                (accepted if ok == 201 else errors)[0] += 1

    def push_and_pull() -> None:
        with open_store(workspace) as own:
            push(own, settings, book, annotators=[p.email for p in people], show_progress=False)
        with open_store(workspace) as own:
            pull(own, settings, book, show_progress=False)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=annotators + 1) as pool:
        jobs = [pool.submit(annotate_all, p.email) for p in people] + [pool.submit(push_and_pull)]
        for job in jobs:
            job.result()
    seconds = time.perf_counter() - t0
    pull(store, settings, book, show_progress=False)
    in_studio = sum(p["annotations"] for p in studio_status(settings, store)["projects"])
    return Outcome(label, accepted[0], errors[0], seconds, in_studio, store.count("annotations"))


def print_table(results: list[Outcome]) -> None:
    head = ("database", "accepted", "ann/s", "errors", "in LS", "pulled", "lost in LS", "lost in pull")
    print("\n" + "".join(f"{h:>13}" for h in head))
    for r in results:
        row = (
            r.database,
            r.accepted,
            f"{r.rate:.1f}",
            r.errors,
            r.in_studio,
            r.pulled,
            r.lost_in_studio,
            r.lost_in_pull,
        )
        print("".join(f"{v!s:>13}" for v in row))
    pg, lite = results
    ratio = pg.rate / lite.rate if lite.rate else float("inf")
    print(f"\nPostgreSQL / SQLite throughput: {ratio:.2f}x; lost: {pg.lost + lite.lost} (target 0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=30, help="tasks per annotator")
    args = parser.parse_args()
    reason = pg_cluster.missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, pg_cluster.postgres_cluster(durable=True) as cluster:
        root = Path(tmp)
        url = cluster.create_database("labelstudio")
        with ThreadPoolExecutor(max_workers=2) as pool:  # both servers start at once (most of the run's time)
            pg_job = pool.submit(start_studio, root / "pg", url)
            lite_job = pool.submit(start_studio, root / "sqlite", None)
            servers = {"postgresql": pg_job.result(), "sqlite": lite_job.result()}
        try:
            results = [
                run_team(srv, label, root / f"team-{label}", args.annotators, args.tasks)
                for label, srv in servers.items()
            ]
        finally:
            for srv in servers.values():
                server.stop_server(srv.settings)
    print_table(results)
    return 0 if all(r.lost == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
