"""Which models the app offers comes from the environment."""

from __future__ import annotations

from attribot_core import DEFAULT_MODEL, PRESETS, preset_status
from studio.config import load_config


def test_config_offers_installed_presets_by_default():
    config = load_config({})
    installed = [name for name, p in PRESETS.items() if preset_status(p)[0]]
    assert config.default_model == DEFAULT_MODEL and config.models[0] == DEFAULT_MODEL
    assert set(installed) <= set(config.models) and config.allow_custom
    assert {name for name, _ in config.missing_presets} == set(PRESETS) - set(installed)


def test_config_from_the_environment():
    config = load_config({"ATTRIBOT_MODELS": " a , b,", "ATTRIBOT_DEFAULT_MODEL": "b",
                          "ATTRIBOT_ALLOW_CUSTOM_MODEL": "0"})
    assert config.models == ("b", "a") and config.default_model == "b" and not config.allow_custom


def test_the_estimate_first_and_the_prefill_are_on_unless_the_environment_turns_them_off():
    assert load_config({}).estimate_first and load_config({}).prefill
    off = load_config({"ATTRIBOT_ESTIMATE_FIRST": "0", "ATTRIBOT_PREFILL": "off"})
    assert not off.estimate_first and not off.prefill
