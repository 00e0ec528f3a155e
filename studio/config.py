"""Which models the app offers, read from the environment (so tests and deployments choose, not code).

* ``ATTRIBOT_MODELS``: comma-separated model specs for the picker (preset names, folders, ``.gguf``
  paths, HF ids). Default: the presets whose packages are installed.
* ``ATTRIBOT_DEFAULT_MODEL``: the picker's default (default :data:`attribot_core.DEFAULT_MODEL`,
  ``qwen2.5-coder-0.5b``); always offered.
* ``ATTRIBOT_ALLOW_CUSTOM_MODEL``: ``1`` (default) shows a free-text box for any HF id, folder or
  GGUF path; ``0`` limits a shared deployment to the listed models.
* ``ATTRIBOT_ESTIMATE_FIRST``: ``1`` (default) shows a run's one-pass estimate before its exact scores
  where the model has estimator weights; ``0`` runs exactly as the CLI does, without that pass.
* ``ATTRIBOT_PREFILL``: ``1`` (default) lets the idle run worker compute ahead the prompt of the inputs
  the Attribute page shows, so a Run starts its answer at once; ``0`` leaves the model idle until Run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from attribot_core import DEFAULT_MODEL, PRESETS, preset_status

__all__ = ["CUSTOM", "StudioConfig", "load_config", "model_label"]

CUSTOM = "__custom__"  # the picker's "other model" choice


@dataclass(frozen=True)
class StudioConfig:
    models: tuple[str, ...]
    default_model: str
    allow_custom: bool
    missing_presets: tuple[tuple[str, str], ...] = ()  # (preset, how to install it)
    estimate_first: bool = True  # runs show the one-pass estimate first (where weights exist)
    prefill: bool = True  # the idle worker computes ahead the prompt of the inputs on screen


def _truthy(value: str) -> bool:
    return value.strip().lower() not in {"0", "false", "no", "off", ""}


def load_config(env: Mapping[str, str] | None = None) -> StudioConfig:
    env = os.environ if env is None else env
    default = env.get("ATTRIBOT_DEFAULT_MODEL", "").strip() or DEFAULT_MODEL
    listed = [m.strip() for m in env.get("ATTRIBOT_MODELS", "").split(",") if m.strip()]
    missing: list[tuple[str, str]] = []
    if not listed:
        for name, preset in PRESETS.items():
            ok, message = preset_status(preset)
            if ok:
                listed.append(name)
            else:
                missing.append((name, message))
    models = tuple(dict.fromkeys([default, *listed]))
    return StudioConfig(models, default, _truthy(env.get("ATTRIBOT_ALLOW_CUSTOM_MODEL", "1")), tuple(missing),
                        _truthy(env.get("ATTRIBOT_ESTIMATE_FIRST", "1")), _truthy(env.get("ATTRIBOT_PREFILL", "1")))


def model_label(spec: str) -> str:
    """A readable name for a model spec in pickers."""
    if spec == CUSTOM:
        return "Other model (HF id, folder or .gguf path)…"
    if spec in PRESETS:
        preset = PRESETS[spec]
        return f"{preset.title} · {preset.size_mb} MB"
    path = Path(spec)
    if path.suffix == ".gguf":
        return f"{path.name} (GGUF file)"
    if spec.startswith(("/", ".", "~")):
        return f"{path.name or spec} (folder)"
    return spec
