"""docs/python.md cannot rot: its ```python blocks run, in order, as one script in a fresh interpreter in a
temporary directory (with examples/ linked in, as in a checkout), without Label Studio or a model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pipeline.api import Workspace

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "python.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_the_page_runs(tmp_path: Path) -> None:
    blocks = python_blocks(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 8, "docs/python.md lost its walk-through"
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    script = tmp_path / "notebook.py"
    script.write_text("\n\n".join(f"# --- block {i}\n{b}" for i, b in enumerate(blocks, 1)), encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "notebook-ws" / "culturecode.db").is_file()
    assert (tmp_path / "alpha.png").stat().st_size > 1000 and (tmp_path / "agreement.png").is_file()
    assert "no classifier yet" in proc.stdout  # the page's workspace has no model, as the page says


def test_the_surface_table_names_real_methods() -> None:
    table = PAGE.read_text(encoding="utf-8").split("## The surface", 1)[1]
    names = set(re.findall(r"`ws\.(\w+)", table))
    assert names >= {"agreement", "gold", "gold_dataset", "segments", "annotations", "model", "model_version"}
    missing = sorted(n for n in names if not hasattr(Workspace, n))
    assert not missing, f"docs/python.md names Workspace members that do not exist: {missing}"


def test_the_extractor_finds_only_python_blocks() -> None:
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n"]
