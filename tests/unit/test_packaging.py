"""The wheel ships the default settings, the codebook and the prompts; the installed CLI works outside a checkout.

The top-level configs/ and prompts/ are the only copies: the wheel maps them to pipeline/configs and
pipeline/prompts, and a checkout's (or the current directory's) copies win when present.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline import config
from pipeline.llm.prompts import load_template

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUILD_SOURCES = ["pyproject.toml", "README.md", "pipeline", "configs", "prompts"]
GOLD_LINES = 220  # the first documents of examples/gold: enough for `train --method head`, fast on two cores
TRANSCRIPT = ROOT / "examples" / "transcripts" / "interview_pc_dawes_2024-03.txt"


# --------------------------------------------------------------------------- where shipped files are found


def _write_template(directory: Path, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.system.j2").write_text("local system {{ codebook.id }}", encoding="utf-8")
    (directory / f"{name}.user.j2").write_text("local user {{ segment.text }}", encoding="utf-8")


def test_prompts_in_the_current_directory_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_template(tmp_path / "prompts", "zero_shot")
    monkeypatch.chdir(tmp_path)
    assert load_template("zero_shot").directory == tmp_path / "prompts"
    # a template the local folder lacks still comes from what culturecode ships
    assert load_template("few_shot").directory == config.shipped_file("prompts")


def test_a_checkout_wins_over_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package_dir = Path(config.__file__).resolve().parent
    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path)  # a root without pyproject.toml is not a checkout
    assert config.shipped_roots() == [package_dir]
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "pipeline.yaml").write_text("workspace: elsewhere\n", encoding="utf-8")
    assert config.shipped_roots() == [tmp_path, package_dir]
    assert config.shipped_file("configs/pipeline.yaml") == tmp_path / "configs" / "pipeline.yaml"


def test_codebook_setting_falls_back_to_the_shipped_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = config.load_settings()
    assert settings.codebook_path() == config.DEFAULT_CODEBOOK
    local = tmp_path / "configs" / "codebooks" / "police_culture.yaml"
    local.parent.mkdir(parents=True)
    shutil.copy(config.DEFAULT_CODEBOOK, local)
    assert settings.codebook_path().resolve() == local.resolve()


# --------------------------------------------------------------------------- the built wheel


def _copy_sources(dest: Path) -> Path:
    """Build from a copy so the build leaves no build/ or egg-info behind in the checkout."""
    for name in BUILD_SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, dest / name)
    return dest


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "pip"), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _copy_sources(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    build = _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source))
    assert build.returncode == 0, build.stderr[-3000:]
    wheels = list(out.glob("culturecode-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed on its own into a folder; PYTHONPATH puts it ahead of the editable checkout."""
    target = tmp_path_factory.mktemp("site")
    install = _pip("install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel))
    assert install.returncode == 0, install.stderr[-3000:]
    return target


@pytest.mark.slow
def test_wheel_contains_settings_codebook_prompts_and_every_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p for p in (ROOT / "configs").rglob("*.yaml")] + list((ROOT / "prompts").glob("*.j2"))
    expected = {"pipeline/" + p.relative_to(ROOT).as_posix() for p in shipped}
    assert {
        "pipeline/configs/pipeline.yaml",
        "pipeline/configs/codebooks/police_culture.yaml",
        "pipeline/prompts/zero_shot.system.j2",
        "pipeline/prompts/few_shot.user.j2",
    } <= expected
    assert sorted(expected - names) == []
    packages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pipeline").rglob("__init__.py")}
    assert sorted(packages - names) == []
    templates = {"pipeline/" + p.relative_to(ROOT / "pipeline").as_posix() for p in (ROOT / "pipeline").rglob("*.j2")}
    assert "pipeline/gold/templates/appendix.tex.j2" in templates and sorted(templates - names) == []


def _cli(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(installed), "NO_COLOR": "1", "COLUMNS": "200"}
    result = subprocess.run(
        [str(installed / "bin" / "culturecode"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"culturecode {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _shipped_config_seen_by(installed: Path, cwd: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    probe = subprocess.run(
        [sys.executable, "-c", "from pipeline import config; print(config.DEFAULT_CONFIG)"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return Path(probe.stdout.strip())


@pytest.mark.slow
def test_installed_cli_runs_from_an_empty_directory(installed: Path, tmp_path: Path) -> None:
    assert ROOT not in tmp_path.parents
    assert _shipped_config_seen_by(installed, tmp_path) == installed / "pipeline" / "configs" / "pipeline.yaml"
    shutil.copy(TRANSCRIPT, tmp_path / TRANSCRIPT.name)
    (tmp_path / "gold").mkdir()
    gold_lines = (ROOT / "examples" / "gold" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "gold" / "gold.jsonl").write_text("\n".join(gold_lines[:GOLD_LINES]) + "\n", encoding="utf-8")

    _cli(installed, tmp_path, "ingest", TRANSCRIPT.name)
    _cli(installed, tmp_path, "train", "--method", "head", "--gold", "gold")
    _cli(installed, tmp_path, "prelabel")
    status = json.loads(_cli(installed, tmp_path, "status", "--json").stdout)
    plan = json.loads(_cli(installed, tmp_path, "llm", "plan", "--limit", "1", "--json").stdout)

    counts = status["counts"]
    assert counts["documents"] == 1 and counts["segments"] > 10
    assert counts["predicted_segments"] == counts["segments"]
    assert status["current_model"]
    # the packaged prompt is the checkout's prompt, byte for byte (its version is a hash of the two files)
    assert plan["prompt_version"] == load_template("zero_shot", ROOT / "prompts").version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gold", TRANSCRIPT.name, "workspace"]
