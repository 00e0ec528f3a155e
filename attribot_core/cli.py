"""``attribot``: attribute, generate and list models from the command line.

Results go to stdout as a ranked table (and to ``--json``/``--csv`` files); progress and model-loading
chatter go to stderr, so stdout can be piped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"attribot: cannot read {path}: {exc}") from None


def _span(text: str) -> tuple[int, int]:
    try:
        start, end = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected START:END character offsets, e.g. 0:40") from None
    return start, end


class _Progress:
    """One stderr line per round, rewritten in place on a terminal."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int, what: str) -> None:
        if not (self.tty or done == total):
            return
        end = "\n" if done == total else "\r"
        elapsed = time.perf_counter() - self.start
        print(f"  {what}: {done}/{total} forward passes  ({elapsed:.1f} s)", end=end, file=sys.stderr)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context", required=True, help="context file, or - for stdin")
    p.add_argument("--question", required=True)
    p.add_argument("--model", default=None, help="preset, HF id, model folder or .gguf (default: smollm2-135m)")
    p.add_argument("--template", default=None, help="prompt template with {context} and {question}")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if present)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: fp32 on CPU)")
    p.add_argument("--trust-remote-code", action="store_true", help="run a model's own code (off by default)")


def _parser() -> argparse.ArgumentParser:
    from .methods import METHODS

    parser = argparse.ArgumentParser(prog="attribot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    a = sub.add_parser("attribute", help="attribute a response to the context's sentences")
    _common(a)
    a.add_argument("--response", default=None, help="explain this response instead of generating one")
    a.add_argument("--response-file", default=None)
    a.add_argument("--method", default="loo", choices=sorted(METHODS))
    a.add_argument("--proxy-model", default=None)
    a.add_argument("--keep-paragraphs", type=int, default=None, help="hierarchical k (or pruning's paragraph stage)")
    a.add_argument("--keep-sentences", type=int, default=None, help="pruning m")
    a.add_argument("--branching", type=int, default=None, help="tree: children per block (default 4)")
    a.add_argument("--proxy-stage", default=None, choices=["auto", "loo", "hierarchical", "tree"],
                   help="pruning: how the proxy ranks sentences (default auto)")
    a.add_argument("--n-ablations", type=int, default=None, help="surrogate baseline: random ablations")
    a.add_argument("--batch-size", default=None, metavar="N|auto",
                   help="ablations per forward pass (auto: as many as fit a GPU; 1 on a CPU, measured fastest)")
    a.add_argument("--response-span", type=_span, default=None, help="attribute only this START:END of the response")
    a.add_argument("--top", type=int, default=10, help="rows in the printed table")
    a.add_argument("--json", default=None, help="write the full result as JSON")
    a.add_argument("--csv", default=None, help="write the sentence table as CSV")

    g = sub.add_parser("generate", help="print the model's response")
    _common(g)

    sub.add_parser("models", help="list model presets, installed or not, and how to install them")
    sub.add_parser("methods", help="list attribution methods")
    return parser


def _method_params(args: argparse.Namespace) -> dict:
    from .methods import get_method

    spec = get_method(args.method)
    given = {
        "keep_paragraphs": args.keep_paragraphs,
        "keep_sentences": args.keep_sentences,
        "n_ablations": args.n_ablations,
        "branching": args.branching,
        "proxy_stage": args.proxy_stage,
    }
    unused = [k for k, v in given.items() if v is not None and k not in spec.params]
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        raise SystemExit(f"attribot: {flags} does not apply to --method {args.method}")
    return {k: v for k, v in given.items() if v is not None}


def _load(spec: str | None, args: argparse.Namespace):
    from .models import DEFAULT_MODEL, load_model

    name = spec or DEFAULT_MODEL
    print(f"Loading {name} ...", file=sys.stderr)
    return load_model(name, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)


def _print_table(result, top: int) -> None:
    print(f"method {result.method} | model {result.model}"
          + (f" | proxy {result.proxy_model}" if result.proxy_model else ""))
    print(f"response: {result.response}")
    if result.log_prob_full is not None:
        print(f"log p(response | context) = {result.log_prob_full:.3f} nats over {result.response_tokens} tokens")
    passes = ", ".join(f"{m}: {n}" for m, n in result.forward_passes.items())
    print(f"forward passes: {passes} | time {result.timings['total_s']:.2f} s\n")
    print(f"{'rank':>4}  {'score':>9}  {'par':>3}  {'by':<14}  sentence")
    for rank, s in enumerate(result.top_k(top), 1):
        text = " ".join(s.text.split())
        text = text if len(text) <= 90 else text[:87] + "..."
        print(f"{rank:>4}  {s.score:>9.4f}  {s.paragraph:>3}  {(s.scored_by or '')[:14]:<14}  {text}")
    unscored = sum(s.score is None for s in result.sentences)
    if unscored:
        print(f"\n{unscored} sentence(s) not scored (pruned).")


def _attribute(args: argparse.Namespace) -> None:
    from .api import attribute
    from .prompt import DEFAULT_TEMPLATE

    context = _read(args.context)
    response = _read(args.response_file) if args.response_file else args.response
    params = _method_params(args)
    target = _load(args.model, args)
    proxy = _load(args.proxy_model, args) if args.proxy_model else None
    result = attribute(
        context,
        args.question,
        model=target,
        method=args.method,
        proxy_model=proxy,
        response=response,
        response_span=args.response_span,
        template=args.template or DEFAULT_TEMPLATE,
        max_new_tokens=args.max_new_tokens,
        progress=_Progress(),
        **({"batch_size": args.batch_size} if args.batch_size else {}),
        **params,
    )
    _print_table(result, args.top)
    if args.json:
        Path(args.json).write_text(result.to_json(), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        result.to_dataframe("sentence").to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)


def _generate(args: argparse.Namespace) -> None:
    from .generate import generate_response
    from .prompt import DEFAULT_TEMPLATE

    context = _read(args.context)
    lm = _load(args.model, args)
    response = generate_response(
        lm, context, args.question, template=args.template or DEFAULT_TEMPLATE, max_new_tokens=args.max_new_tokens
    )
    print(response.text)


def _models() -> None:
    from .models import DEFAULT_MODEL, PRESETS, preset_status

    for preset in PRESETS.values():
        ok, message = preset_status(preset)
        mark = "*" if preset.name == DEFAULT_MODEL else " "
        print(f"{mark} {preset.name:<20} {preset.size_mb:>5} MB  {preset.title}")
        print(f"  {'':<20} {message}")
    print("\nAlso accepted: a local model folder, a .gguf file, or a Hugging Face id already in the local cache.")


def _methods() -> None:
    from .methods import METHODS

    for spec in METHODS.values():
        params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
        print(f"{spec.name:<13} {spec.summary}" + (f"  [{params}]" if params else ""))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``attribot`` console script; returns the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    from .api import InputError
    from .models import ModelError

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        {"attribute": _attribute, "generate": _generate}.get(args.command, lambda a: None)(args)
        if args.command == "models":
            _models()
        elif args.command == "methods":
            _methods()
    except (InputError, ModelError, ValueError) as exc:
        print(f"attribot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attribot: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
