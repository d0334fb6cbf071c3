"""One set of defaults: the code's settings and the shipped configs/pipeline.yaml agree, key for key.

A user's own --config only needs what it changes: what it leaves out takes the code's defaults, so the
code's defaults must be the documented ones (the shipped file)."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from pipeline.config import DEFAULT_CONFIG, Settings, load_settings


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            paths |= _field_paths(kind, f"{prefix}{name}.")
        else:
            paths.add(f"{prefix}{name}")
    return paths


def test_the_shipped_config_sets_every_setting_to_the_codes_default() -> None:
    shipped = _flatten(yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8")))
    defaults = _flatten(Settings().model_dump(mode="json"))
    drift = {key: (value, defaults.get(key)) for key, value in shipped.items() if defaults.get(key) != value}
    assert drift == {}, f"configs/pipeline.yaml (left) and the code's defaults (right) disagree: {drift}"


def test_every_setting_is_documented_in_the_shipped_config() -> None:
    shipped = set(_flatten(yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))))
    assert _field_paths(Settings) - shipped == set()


def test_a_user_config_without_a_classifier_section_trains_the_documented_model(tmp_path) -> None:
    own = tmp_path / "mine.yaml"
    own.write_text("workspace: elsewhere\n", encoding="utf-8")
    assert load_settings(own).classifier == load_settings(DEFAULT_CONFIG).classifier
    assert load_settings(own).workspace == "elsewhere"
