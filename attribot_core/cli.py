"""``attribot``: attribute, generate, run datasets in batch, export them, and list models from the command line.

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
    """The text of ``path`` (``-``: stdin); a missing, unreadable or non-UTF-8 file is bad input (exit 2)."""
    from .api import InputError

    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {path}: it is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}.") from None


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


def _common(p: argparse.ArgumentParser, *, passages: bool = False) -> None:
    if passages:  # attribute: one text, or retrieved passages (exactly one of the two)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--context", help="context file, or - for stdin")
        where.add_argument("--passages", metavar="FILE.json|.jsonl",
                           help="retrieved passages instead of --context: a JSON list or JSONL of "
                                '{"id", "title", "text"} (or strings); each passage is a top-level source')
        p.add_argument("--passage-template", default=None,
                       help="how the prompt shows each passage: {number}, {id}, {title}, {text} "
                            "(default: '[{number}] {title}' on a line, then the text)")
    else:
        p.add_argument("--context", required=True, help="context file, or - for stdin")
    p.add_argument("--question", required=True)
    p.add_argument("--model", default=None, help="preset, HF id, model folder or .gguf (default: qwen2.5-coder-0.5b)")
    p.add_argument("--template", default=None, help="prompt template with {context} and {question}")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if present)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: fp32 on CPU)")
    p.add_argument("--trust-remote-code", action="store_true", help="run a model's own code (off by default)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _method_flags(p: argparse.ArgumentParser) -> None:
    """``--method``, ``--proxy-model`` and one flag per parameter of any registered method (from its spec).

    A parameter several methods share (``keep_paragraphs``) is one flag; flags that are not given stay
    None, so the method's own default applies.
    """
    from .methods import METHODS

    p.add_argument("--method", default="loo", choices=sorted(METHODS))
    p.add_argument("--proxy-model", default=None)
    for name, specs in _method_param_specs().items():
        first = specs[0][1]
        defaults = "; ".join(f"{m}: {'none' if ps.default is None else ps.default}" for m, ps in specs)
        help_ = f"{first.label} — {first.help} Must be {first.requirement}. Default {defaults}."
        kw: dict = {"default": None, "dest": name, "help": help_.replace("%", "%%")}
        if first.kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif first.choices:  # methods may allow different values of a shared name: the union (each checks its own)
            kw["choices"] = tuple(dict.fromkeys(c for _, ps in specs for c in ps.choices))
        else:
            kw.update(type=first.kind, metavar="N" if first.kind is int else "X")
        p.add_argument(_flag(name), **kw)


def _method_param_specs() -> dict:
    """Parameter name -> [(method, its ParamSpec)] over every registered method, in registration order."""
    from .methods import METHODS

    specs: dict = {}
    for method in METHODS.values():
        for ps in method.parameters:
            specs.setdefault(ps.name, []).append((method.name, ps))
    return specs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attribot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    a = sub.add_parser("attribute", help="attribute a response to the context's sentences")
    _common(a, passages=True)
    a.add_argument("--response", default=None, help="explain this response instead of generating one")
    a.add_argument("--response-file", default=None)
    _method_flags(a)
    a.add_argument("--batch-size", default=None, metavar="N|auto",
                   help="ablations per forward pass (auto: as many as fit a GPU; 1 on a CPU, measured fastest)")
    a.add_argument("--response-span", type=_span, default=None, help="attribute only this START:END of the response")
    a.add_argument("--top", type=int, default=10, help="rows in the printed table")
    a.add_argument("--json", default=None, help="write the full result as JSON")
    a.add_argument("--csv", default=None, help="write the sentence table as CSV")
    a.add_argument("--db", default=None, help="also keep the run in this run database (History shows it); "
                   "default: $ATTRIBOT_DB when set, else the run is not stored")
    a.add_argument("--per-token", default=None, metavar="OUT.csv",
                   help="write per-token LOO as CSV: one row per response token, one column per sentence (nats)")

    b = sub.add_parser("batch", help="attribute every row of a JSONL/JSON/CSV/Parquet file (resumable)")
    b.add_argument("input", help="JSONL, JSON array, CSV or Parquet with context, question [, response, id, gold]; "
                   "- for stdin")
    b.add_argument("--format", default=None, choices=("jsonl", "json", "csv", "parquet"), help="input format "
                   "(default: from the file name, else from its content)")
    b.add_argument("--model", default=None, help="preset, HF id, model folder or .gguf (default: qwen2.5-coder-0.5b)")
    _method_flags(b)
    b.add_argument("--max-new-tokens", type=int, default=64)
    b.add_argument("--db", default=None, help="run database (default: $ATTRIBOT_DB, else the user data folder)")
    b.add_argument("--name", default=None, help="batch name (default: the input file's name; 'stdin' for -); "
                   "rerun with the same name to resume")
    b.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray actors: a local Ray without ADDRESS, else join the cluster at ADDRESS")
    b.add_argument("--workers", type=int, default=None, help="Ray actors (default: CPUs / --threads)")
    b.add_argument("--threads", type=int, default=None,
                   help="torch threads: per Ray actor (its CPU share, default 1), or of this process without --ray")
    b.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    b.add_argument("--methods", default=None, metavar="M1,M2,...",
                   help="several methods over the input as sibling batches NAME-M1, NAME-M2, ... (instead of "
                   "--method); each row's response is generated once and shared; a method flag goes to the "
                   "listed methods that have that parameter")
    b.add_argument("--measures", default=None, metavar="topk,lds",
                   help="also measure faithfulness (costs forward passes): topk = log-prob drop when the top-1/3/5 "
                   "sentences are removed, lds = linear datamodeling score; resumable, rows already measured "
                   "are skipped")
    b.add_argument("--lds-masks", type=int, default=None, metavar="M",
                   help="random masks per row for lds (default 32; shared by the sibling batches of a row)")
    b.set_defaults(method=None)  # None: not given (loo), so --method beside --methods is refused

    e = sub.add_parser("export", help="write a stored batch as JSONL, CSV or Parquet")
    e.add_argument("--db", default=None, help="run database (default: $ATTRIBOT_DB, else the user data folder)")
    e.add_argument("--name", required=True, help="the batch to export")
    e.add_argument("--format", default=None, choices=("jsonl", "csv", "parquet"),
                   help="default: from --out's suffix, else jsonl")
    e.add_argument("--out", default=None, help="output file (default: stdout)")

    c = sub.add_parser("compare", help="agreement of batches with a reference batch over the same rows (by row id)")
    c.add_argument("batches", nargs="+", metavar="BATCH", help="batches to compare with the reference")
    c.add_argument("--reference", required=True, help="the reference batch, typically one made with --method loo")
    c.add_argument("--db", default=None, help="run database (default: $ATTRIBOT_DB, else the user data folder)")
    c.add_argument("--json", default=None, help="write every figure, interval and per-row value as JSON")
    c.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default 2000)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (the same seed gives the same intervals)")

    s = sub.add_parser("show", help="print the ranked table of a saved result (a --json file or the app's export)")
    s.add_argument("result", help="result JSON file, or - for stdin")
    s.add_argument("--top", type=int, default=10, help="rows in the printed table")

    sp = sub.add_parser("span", help="rank sentences for part of the response of a saved result (no model run)")
    sp.add_argument("result", help="a result JSON written by --json or the app")
    sp.add_argument("start", type=int, help="first character of the response part")
    sp.add_argument("end", type=int, help="character after the part (exclusive)")
    sp.add_argument("--top", type=int, default=10, help="rows in the printed table")
    sp.add_argument("--json", default=None, help="write the span's result as JSON")

    est = sub.add_parser("estimator", help="the learned one-pass estimate's head weights")
    train = est.add_subparsers(dest="estimator_command", required=True).add_parser(
        "train", help="fit head weights on stored exact-LOO runs of one model; prints held-out figures")
    train.add_argument("--db", default=None, help="run database (default: $ATTRIBOT_DB, else the user data folder)")
    train.add_argument("--batch", required=True, nargs="+", metavar="NAME",
                       help="batch(es) made with attribot batch --method loo")
    train.add_argument("--model", default=None, help="the model the runs were made with (default: qwen2.5-coder-0.5b)")
    train.add_argument("--out", required=True, help="weights file to write (JSON)")
    train.add_argument("--seed", type=int, default=0, help="seed of the train / validation / held-out split")
    train.add_argument("--depth", type=int, default=None, metavar="N",
                       help="weigh only the model's first N layers: the estimate's pass then stops after them "
                            "(default: every layer)")

    g = sub.add_parser("generate", help="print the model's response")
    _common(g)

    m = sub.add_parser("models", help="list model presets, installed or not, and how to install them")
    m.add_argument("--prepare", nargs="*", metavar="PRESET", default=None,
                   help="assemble and dequantise these presets (default: the default model) into the weight "
                        "cache now, so that their first load takes about a second")
    sub.add_parser("methods", help="list attribution methods")
    return parser


def _method_params(args: argparse.Namespace, *, any_method: bool = False) -> dict:
    """The method parameters given as flags, checked by the method's specs (a flag of another method is
    refused by name). ``any_method``: every given flag, for several methods (each takes its own)."""
    from .api import check_params
    from .methods import get_method

    given = {name: getattr(args, name, None) for name in _method_param_specs()}
    if any_method:
        return {k: v for k, v in given.items() if v is not None}
    spec = get_method(args.method)
    unused = [k for k, v in given.items() if v is not None and k not in spec.params]
    if unused:
        raise SystemExit(f"attribot: {', '.join(map(_flag, unused))} does not apply to --method {args.method}")
    params = {k: v for k, v in given.items() if v is not None}
    check_params(args.method, params)
    return params


def _load(spec: str | None, args: argparse.Namespace):
    from .models import DEFAULT_MODEL, load_model

    name = spec or DEFAULT_MODEL
    print(f"Loading {name} ...", file=sys.stderr)
    return load_model(name, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)


def _print_table(result, top: int) -> None:
    from .viz import truncation_note

    print(f"method {result.method} | model {result.model}"
          + (f" | proxy {result.proxy_model}" if result.proxy_model else ""))
    print(f"response: {result.response}")
    note = truncation_note(result)
    if note:
        print(f"warning: {note}")
    if result.log_prob_full is not None:
        print(f"log p(response | context) = {result.log_prob_full:.3f} nats over {result.response_tokens} tokens")
    passes = ", ".join(f"{m}: {n}" for m, n in result.forward_passes.items())
    total = result.timings.get("total_s", result.timings.get("attribute_s"))
    print(f"forward passes: {passes}" + (f" | time {total:.2f} s" if total is not None else "") + "\n")
    if result.passages:  # name each sentence's source: "source 3 · Harbour board minutes"
        print(f"{'rank':>4}  {'score':>9}  {'source':<40}  sentence")
    else:
        print(f"{'rank':>4}  {'score':>9}  {'par':>3}  {'by':<14}  sentence")
    for rank, s in enumerate(result.top_k(top), 1):
        text = " ".join(s.text.split())
        text = text if len(text) <= 90 else text[:87] + "..."
        par = "-" if s.paragraph is None else s.paragraph
        if result.passages:
            label = result.source_label(s.paragraph)
            print(f"{rank:>4}  {s.score:>9.4f}  {label if len(label) <= 40 else label[:37] + '...':<40}  {text}")
        else:
            print(f"{rank:>4}  {s.score:>9.4f}  {par:>3}  {(s.scored_by or '')[:14]:<14}  {text}")
    unscored = sum(s.score is None for s in result.sentences)
    if unscored:
        print(f"\n{unscored} sentence(s) not scored (pruned).")


def _store(path: str | None, *, read_only: bool = False):
    """The run database at ``path`` (default: $ATTRIBOT_DB, else the user data folder); a foreign or damaged
    file is refused with one line before anything in it changes."""
    from .runs import RunStore

    return RunStore(path or None, read_only=read_only)


def _stored_run(args: argparse.Namespace, context, response: str | None, params: dict):
    """The store and a running run for ``attribot attribute --db`` (None when it is not to be stored).

    A custom template or dtype is not part of a run's request, so such a run is not stored: the app
    would otherwise return its result for a request that means something else.
    """
    from .models import DEFAULT_MODEL
    from .prompt import DEFAULT_TEMPLATE
    from .runs import RunRequest

    path = args.db or os.environ.get("ATTRIBOT_DB")
    if not path:
        return None
    if (args.template and args.template != DEFAULT_TEMPLATE) or args.dtype:
        print("note: not stored in the run database (--template and --dtype are not part of a stored run)",
              file=sys.stderr)
        return None
    request = RunRequest.for_method(context, args.question, args.model or DEFAULT_MODEL, args.method, params,
                                    args.proxy_model, response or "", args.response_span, args.max_new_tokens,
                                    passage_template=args.passage_template)
    store = _store(path)
    record = store.create(request, source="cli")
    store.start(record.id)
    return store, record.id


def _context(args: argparse.Namespace):
    """``--context``'s text, or ``--passages``' passages (a list: each one a top-level source)."""
    if args.passages is None:
        return _read(args.context)
    from .runs.inputs import passages_from_text

    return passages_from_text(_read(args.passages), args.passages)


def _attribute(args: argparse.Namespace) -> None:
    context = _context(args)
    response = _read(args.response_file) if args.response_file else args.response
    params = _method_params(args)
    from .api import check_inputs, plan_line
    from .prompt import DEFAULT_PASSAGE_TEMPLATE, DEFAULT_TEMPLATE

    args.passage_template = args.passage_template or DEFAULT_PASSAGE_TEMPLATE
    check_inputs(context, args.question, method=args.method, has_proxy=bool(args.proxy_model), response=response,
                 response_span=args.response_span, template=args.template or DEFAULT_TEMPLATE,
                 max_new_tokens=args.max_new_tokens, passage_template=args.passage_template,
                 **params)  # before any model loads: bad input fails at once
    stored = _stored_run(args, context, response, params)
    from .csvsafe import frame_to_csv

    try:
        target = _load(args.model, args)
        proxy = _load(args.proxy_model, args) if args.proxy_model else None
        print(plan_line(context, args.question, method=args.method, model=target, response=response or "",
                        passage_template=args.passage_template, **params), file=sys.stderr)
        result = _run_attribute(args, context, response, params, target, proxy)
    except BaseException as exc:
        if stored is not None and isinstance(exc, KeyboardInterrupt):
            stored[0].cancel(stored[1], "Interrupted (Ctrl-C).")
        elif stored is not None:
            stored[0].fail(stored[1], str(exc) or type(exc).__name__)
        raise
    if stored is not None:
        stored[0].finish(stored[1], result)
        print(f"stored as run {stored[1]} in {stored[0].path}", file=sys.stderr)
    _print_table(result, args.top)
    if args.json:
        Path(args.json).write_text(result.to_json(), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        frame_to_csv(result.to_dataframe("sentence"), args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.per_token:
        frame_to_csv(result.to_token_dataframe(), args.per_token)
        print(f"wrote {args.per_token}", file=sys.stderr)


def _run_attribute(args: argparse.Namespace, context, response: str | None, params: dict, target, proxy):
    from .api import attribute
    from .prompt import DEFAULT_TEMPLATE

    return attribute(
        context,
        args.question,
        model=target,
        method=args.method,
        proxy_model=proxy,
        response=response,
        response_span=args.response_span,
        template=args.template or DEFAULT_TEMPLATE,
        max_new_tokens=args.max_new_tokens,
        passage_template=args.passage_template,
        progress=_Progress(),
        **({"batch_size": args.batch_size} if args.batch_size else {}),
        **params,
    )


def _batch(args: argparse.Namespace) -> None:
    from .api import InputError
    from .faithfulness import LDS_MASKS, parse_measures
    from .models import DEFAULT_MODEL
    from .runs.backends import LocalBackend, choose_backend
    from .runs.batch import BatchSettings, measure_batch, sibling_name, sibling_settings
    from .runs.execute import ModelCache
    from .runs.inputs import read_rows

    try:
        measures = parse_measures(args.measures or "")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    masks = args.lds_masks if args.lds_masks is not None else LDS_MASKS
    if masks < 2:
        raise InputError(f"--lds-masks must be at least 2 (got {masks}): LDS is a correlation over masks.")
    if args.methods and args.method is not None:
        raise InputError("Give --method for one batch or --methods for sibling batches, not both.")
    args.method = args.method or "loo"
    model = args.model or DEFAULT_MODEL
    name = args.name or ("stdin" if args.input == "-" else Path(args.input).stem)
    if args.methods:
        batches = [(sibling_name(name, s.method), s) for s in sibling_settings(
            args.methods.split(","), _method_params(args, any_method=True), model=model,
            proxy_model=args.proxy_model, max_new_tokens=args.max_new_tokens)]
    else:
        params = _method_params(args)
        batches = [(name, BatchSettings(model, args.method, tuple(sorted(params.items())), args.proxy_model,
                                        args.max_new_tokens))]
    backend = choose_backend(args.ray, args.workers, args.threads)
    rows = read_rows(args.input, args.format)
    store = _store(args.db)
    with backend:
        print(backend.describe(), file=sys.stderr)
        models = backend.models if isinstance(backend, LocalBackend) else ModelCache()
        for batch_name, settings in batches:
            _one_batch(store, batch_name, rows, settings, backend, args)
            if measures:
                summary = measure_batch(store, batch_name, measures, models=models, masks=masks)
                for message in summary.messages:
                    print(f"note: {message}", file=sys.stderr)
                print(summary.line)
    shown = batches[0][0] if len(batches) == 1 else f"{name}-METHOD"
    print(f"export it: attribot export --db {store.path} --name {shown} --format csv --out {shown}.csv",
          file=sys.stderr)
    if len(batches) > 1:
        print(f"compare them: attribot compare --db {store.path} --reference {batches[0][0]} "
              + " ".join(b for b, _ in batches[1:]), file=sys.stderr)


def _one_batch(store, name: str, rows, settings, backend, args: argparse.Namespace) -> None:
    """Run one batch with a progress bar and print how it ended."""
    from .runs.batch import done_rows, run_batch

    print(f"batch '{name}': {len(rows)} rows from {args.input}, {settings.method} on {settings.model}, "
          f"database {store.path}", file=sys.stderr)
    bar = None

    def on_row(row, summary) -> None:
        if row.status == "skipped" or bar is None:
            return
        # the counts first: update() draws the bar, and a postfix set after it would show one row late
        bar.set_postfix(done=summary.done, failed=summary.failed, refresh=False)
        bar.update(1)

    if not args.no_progress:
        from tqdm import tqdm

        already = len(done_rows(store, name, rows, settings))
        bar = tqdm(total=len(rows) - already, desc=f"batch {name}", unit="row", file=sys.stderr,
                   dynamic_ncols=True, mininterval=0.5)
    try:
        summary = run_batch(store, name, rows, settings, backend, source=f"batch:{args.input}", on_row=on_row)
    finally:
        if bar is not None:
            bar.close()
    for message in summary.messages:
        print(f"note: {message}", file=sys.stderr)
    failed = [r for r in store.list(batch=name, statuses=["failed"], limit=5)]
    for r in failed:
        print(f"  failed row {r.row_id}: {r.error}", file=sys.stderr)
    print(summary.line + f"; store overhead {1000 * summary.store_s / max(1, summary.rows):.1f} ms per row")


def _export(args: argparse.Namespace) -> int:
    """Export a batch, only reading the database. Exit 1 when damaged runs were left out (the rest is written)."""
    from .api import InputError
    from .runs.export import export_batch, export_format

    fmt = export_format(args.format, args.out)
    damaged: list = []
    try:
        n = export_batch(_store(args.db, read_only=True), args.name, fmt, args.out, damaged=damaged)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python exits
        raise InputError("stdout was closed before the export was complete (e.g. by | head); "
                         "use --out FILE for the whole batch.") from None
    for problem in damaged:
        print(f"attribot: warning: {problem} Left out of the export.", file=sys.stderr)
    left_out = f"; {len(damaged)} damaged run(s) left out" if damaged else ""
    print(f"exported {n} rows of batch '{args.name}' as {fmt}" + (f" to {args.out}" if args.out else "") + left_out,
          file=sys.stderr)
    return 1 if damaged else 0


def _compare(args: argparse.Namespace) -> None:
    import json

    from .agreement import compare_batches, format_table
    from .metrics import BOOTSTRAP_RESAMPLES

    resamples = args.resamples or BOOTSTRAP_RESAMPLES
    store = _store(args.db, read_only=True)
    agreements = compare_batches(store, args.reference, args.batches, resamples=resamples, seed=args.seed)
    print(format_table(agreements))
    if args.json:
        doc = {"reference": args.reference, "level": 0.95, "resamples": resamples, "seed": args.seed,
               "batches": [a.to_dict() for a in agreements]}
        Path(args.json).write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)


def _estimator(args: argparse.Namespace) -> None:
    from .models import DEFAULT_MODEL
    from .runs.estimator_train import train_from_store

    report = train_from_store(_store(args.db, read_only=True), args.batch, args.model or DEFAULT_MODEL, args.out,
                              seed=args.seed, depth=args.depth, log=lambda line: print(line, file=sys.stderr))
    print(report.line)


def _show(args: argparse.Namespace) -> None:
    from .result import AttributionResult

    _print_table(AttributionResult.from_json(_read(args.result)), args.top)  # validated: a bad file exits 2


def _span_of_saved(args: argparse.Namespace) -> None:
    """Rank sentences for ``response[start:end]`` from a saved result's per-token values."""
    from .result import AttributionResult

    result = AttributionResult.from_json(_read(args.result))  # validated: a bad file exits 2
    part = result.for_response_span(args.start, args.end)
    print(f"part of the response [{args.start}:{args.end}]: {result.response[args.start:args.end]!r}")
    print(f"{part.extra['span_note']} · from stored per-token values, no forward pass")
    _print_table(part, args.top)
    if args.json:
        Path(args.json).write_text(part.to_json(), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)


def _generate(args: argparse.Namespace) -> None:
    from .generate import generate_response
    from .prompt import DEFAULT_TEMPLATE

    context = _read(args.context)
    lm = _load(args.model, args)
    response = generate_response(
        lm, context, args.question, template=args.template or DEFAULT_TEMPLATE, max_new_tokens=args.max_new_tokens
    )
    print(response.text)


def _models(prepare: list[str] | None = None) -> None:
    from .models import DEFAULT_MODEL, PRESETS, ModelError, preset_status
    from .models import prepare as prepare_model

    if prepare is not None:
        for name in prepare or [DEFAULT_MODEL]:
            if name not in PRESETS:
                raise ModelError(f"No preset '{name}'; the presets are: {', '.join(PRESETS)}.")
            print(f"{name}: ready in {prepare_model(name):.0f} s", flush=True)
        return
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
    from .runs import StoreError

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        commands = {"attribute": _attribute, "generate": _generate, "show": _show, "batch": _batch,
                    "export": _export, "span": _span_of_saved, "compare": _compare, "estimator": _estimator}
        code = commands.get(args.command, lambda a: None)(args) or 0
        if args.command == "models":
            _models(args.prepare)
        elif args.command == "methods":
            _methods()
    except (InputError, ModelError, ValueError, StoreError) as exc:
        print(f"attribot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("attribot: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
