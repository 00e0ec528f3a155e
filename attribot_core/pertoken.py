"""Per-response-token attribution: the vectors every scoring pass computes, kept instead of summed.

A span's LOO score is a sum over the attributed response tokens of
``log p(token | kept context) - log p(token | kept context without the span)`` (nats). Keeping each
span's vector of those per-token deltas (fp32) answers "which sentence made the model say this word"
for any part of the response without another forward pass: sum the deltas over that part's tokens.

Each vector is over the response tokens of the model that scored the span (the target's tokens for
the target's scores, a proxy's own tokens for proxy-scored spans). A :class:`TokenAxis` says where
each of a model's tokens sits in the response text, so a character range of the response selects the
right tokens of any model, across tokenizers, by the same rule the scorer applies to
``response_span`` (:func:`span_mask`).

Stored in result JSON (schema 2) compactly and losslessly: fp32 values (int32 token ends) as
little-endian bytes, byte-shuffled, zlib-compressed, base64; one string per level, the vectors of the
scored spans one after another in index order, each over the tokens of the model that scored it.
"""

from __future__ import annotations

import base64
import difflib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "PerToken",
    "SpanNeedsRerun",
    "Scored",
    "TokenAxis",
    "TokenValues",
    "chars_mask",
    "span_mask",
]

ENCODING = "little-endian float32 values / int32 token ends, byte-shuffled, zlib, base64"

# What the sum of a span's per-token deltas over part of the response means, per method:
RULE_SUM = "sum"  # every span's score is that sum (exact LOO, proxy LOO)
RULE_KEPT = "kept-paragraphs"  # hierarchical: exact when that part keeps the same top-k paragraphs
RULES = (RULE_SUM, RULE_KEPT)


class SpanNeedsRerun(ValueError):
    """A part of the response cannot be attributed from stored values; the message says why."""


def _f32(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(float(x) for x in np.asarray(list(values), dtype=np.float32))


@dataclass(frozen=True)
class TokenValues:
    """One per-token vector: nats per response token of ``model`` (fp32 values, all tokens, unmasked)."""

    model: str
    values: tuple[float, ...]

    @classmethod
    def of(cls, model: str, values: Iterable[float]) -> TokenValues:
        return cls(model, _f32(values))

    @classmethod
    def delta(cls, model: str, base: Sequence[float], variant: Sequence[float]) -> TokenValues:
        """Per-token LOO: ``log p(token | base) - log p(token | variant)``, rounded once to fp32."""
        return cls(model, _f32(b - v for b, v in zip(base, variant, strict=True)))

    def masked_sum(self, mask: Sequence[bool]) -> float:
        """Sum over the tokens in ``mask``, in nats (double precision, in token order)."""
        return float(sum(v for v, on in zip(self.values, mask, strict=True) if on))


class Scored(float):
    """A score in nats that also carries the per-token vector it is the sum of.

    :func:`~attribot_core.methods.base.loo_round` returns these, so per-token data flows through any
    method that passes its scores on to :class:`~attribot_core.methods.base.MethodOutput` unchanged;
    arithmetic on it gives a plain float (a derived number has no per-token meaning of its own).
    """

    tokens: TokenValues | None

    def __new__(cls, value: float, tokens: TokenValues | None = None) -> Scored:
        obj = super().__new__(cls, value)
        obj.tokens = tokens
        return obj

    def __reduce__(self):
        return (Scored, (float(self), self.tokens))


def tokens_of(value: Any) -> TokenValues | None:
    """The per-token vector a score carries, if any."""
    return getattr(value, "tokens", None) if isinstance(value, Scored) else None


# -- which tokens a character range selects -----------------------------------------------------------
def span_mask(offsets: Sequence[tuple[int, int]], text_end: int, start: int, end: int) -> list[bool]:
    """Tokens that the response characters ``[start, end)`` cover: those overlapping the range.

    A token that decodes to nothing (the end-of-turn token) counts when the range reaches the end of
    the text, so "the whole answer" and "everything" agree. This is the rule the scorer applies to
    ``response_span`` (``PromptBuilder.response_mask`` calls it), so sums over it equal a re-run.
    """
    mask = []
    for a, b in offsets:
        if a == b:
            mask.append(end >= text_end and a >= start)
        else:
            mask.append(a < end and b > start)
    return mask


def chars_mask(offsets: Sequence[tuple[int, int]], text_end: int, ranges: Sequence[tuple[int, int]],
               include_end: bool = False) -> list[bool]:
    """Union of :func:`span_mask` over several ranges; ``include_end`` adds the end-of-turn token(s)."""
    mask = [False] * len(offsets)
    for a, b in ranges:
        mask = [m or n for m, n in zip(mask, span_mask(offsets, text_end, a, b), strict=True)]
    if include_end:
        mask = [m or (a == b and a >= text_end) for m, (a, b) in zip(mask, offsets, strict=True)]
    return mask


# -- one model's response tokens ---------------------------------------------------------------------
@dataclass(frozen=True)
class TokenAxis:
    """One model's response tokens and where each sits in that model's decoding of them.

    ``offsets`` index ``text``, the model's own decoding of its response tokens (what its scorer
    measured ``response_span`` against); usually ``text`` is the response itself. ``labels`` are what
    to show for each token (its characters, or the special token's name for an empty one).
    """

    model: str
    offsets: tuple[tuple[int, int], ...]
    text: str
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.offsets)

    def mask(self, ranges: Sequence[tuple[int, int]], include_end: bool = False) -> list[bool]:
        return chars_mask(self.offsets, len(self.text), ranges, include_end)

    def response_offsets(self, response: str) -> tuple[tuple[int, int], ...]:
        """Offsets in ``response`` (equal to ``offsets`` unless this model decodes it differently)."""
        if self.text == response:
            return self.offsets
        matcher = difflib.SequenceMatcher(None, self.text, response, autojunk=False)
        where = [0] * (len(self.text) + 1)
        for _, i1, i2, j1, j2 in matcher.get_opcodes():
            for k in range(i1, i2 + 1):
                where[k] = j1 + min(k - i1, j2 - j1)
        return tuple((where[a], max(where[a], where[b])) for a, b in self.offsets)

    def to_dict(self, response: str) -> dict[str, Any]:
        ends = [b for _, b in self.offsets]
        contiguous = all(a == prev for (a, _), prev in zip(self.offsets, [0, *ends], strict=False))
        d: dict[str, Any] = ({"ends": _pack(np.asarray(ends, dtype="<i4"))} if contiguous
                             else {"offsets": _pack(np.asarray(self.offsets, dtype="<i4").ravel())})
        if self.text != response:
            d["text"] = self.text
        special = {str(i): lab for i, ((a, b), lab) in enumerate(zip(self.offsets, self.labels, strict=True))
                   if lab != self.text[a:b]}
        if special:
            d["labels"] = special
        return d

    @classmethod
    def from_dict(cls, model: str, d: Any, response: str) -> TokenAxis:
        where = f"per_token.models[{model!r}]"
        if not isinstance(d, Mapping):
            raise ValueError(f"{where} must be an object.")
        text = d.get("text", response)
        if not isinstance(text, str):
            raise ValueError(f"{where}.text must be a string.")
        if "ends" in d:
            ends = [int(x) for x in _unpack(d["ends"], "<i4", f"{where}.ends")]
            offsets = tuple(zip([0, *ends[:-1]], ends, strict=True))
        else:
            flat = _unpack(d.get("offsets"), "<i4", f"{where}.offsets")
            if len(flat) % 2:
                raise ValueError(f"{where}.offsets must hold (start, end) pairs; it has {len(flat)} numbers.")
            offsets = tuple((int(a), int(b)) for a, b in zip(flat[::2], flat[1::2], strict=True))
        for i, (a, b) in enumerate(offsets):
            if not 0 <= a <= b <= len(text):
                raise ValueError(f"{where}: token {i} spans {a}:{b}, outside its text (0:{len(text)}).")
        labels = [text[a:b] for a, b in offsets]
        special = d.get("labels", {})
        if not isinstance(special, Mapping):
            raise ValueError(f"{where}.labels must be an object of token index -> label.")
        for key, label in special.items():
            if not (isinstance(key, str) and key.isdigit() and int(key) < len(labels) and isinstance(label, str)):
                raise ValueError(f"{where}.labels: {key!r} is not a token index with a string label.")
            labels[int(key)] = label
        return cls(model, offsets, text, tuple(labels))


def axis_from_tokenizer(model: str, builder: Any, ids: Sequence[int]) -> TokenAxis:
    """The token axis of response ``ids`` under a :class:`~attribot_core.prompt.PromptBuilder`."""
    offsets = tuple(builder.response_token_chars(list(ids)))
    text = builder.decode(list(ids))
    names = builder.tokenizer.convert_ids_to_tokens(list(ids))
    labels = tuple(text[a:b] if b > a else str(name) for (a, b), name in zip(offsets, names, strict=True))
    return TokenAxis(model, offsets, text, labels)


# -- everything per-token that a result keeps ----------------------------------------------------------
@dataclass(frozen=True)
class PerToken:
    """Per-token LOO deltas of every scored span, the token axes they are over, and how they combine.

    ``sentences[i]`` / ``paragraphs[j]`` is ``None`` where the span was not scored, or was scored by a
    method that keeps no per-token values (the baselines). ``full`` holds ``log p(token | full
    context)`` per token when the method ran a model on the full context. ``rule`` says how span scores
    follow from these values (``"sum"``, ``"kept-paragraphs"``, or ``None`` with ``note`` saying why a
    part of the response then needs a re-run).
    """

    axes: Mapping[str, TokenAxis]
    sentences: tuple[TokenValues | None, ...]
    paragraphs: tuple[TokenValues | None, ...]
    full: TokenValues | None = None
    rule: str | None = None
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def spans(self, level: str) -> tuple[TokenValues | None, ...]:
        return self.sentences if level == "sentence" else self.paragraphs

    def main_axis(self, prefer: str | None = None) -> TokenAxis:
        """The axis most sentences were scored on (ties: ``prefer``, usually the target)."""
        counts: dict[str, int] = {m: 0 for m in self.axes}
        for v in self.sentences:
            if v is not None and v.model in counts:
                counts[v.model] += 1
        return self.axes[max(counts, key=lambda m: (counts[m], m == prefer))]

    def masks(self, ranges: Sequence[tuple[int, int]], include_end: bool = False) -> dict[str, list[bool]]:
        """Per model, the tokens that these response character ranges select."""
        return {m: axis.mask(ranges, include_end) for m, axis in self.axes.items()}

    def sum_over(self, values: TokenValues | None, masks: Mapping[str, list[bool]]) -> float | None:
        return None if values is None else values.masked_sum(masks[values.model])

    # -- JSON ------------------------------------------------------------------------------------------
    def to_dict(self, response: str, sentences_by: Sequence[str | None], paragraphs_by: Sequence[str | None]
                ) -> dict[str, Any]:
        """The ``per_token`` block; ``*_by`` are the spans' ``scored_by`` (None = not scored).

        A level is one packed string of the vectors of its scored spans, each over the tokens of the
        model that scored it; ``spans`` / ``by`` are written only where the vectors differ from that.
        """

        def level(vectors: tuple[TokenValues | None, ...], by: Sequence[str | None]) -> dict[str, Any]:
            have = [i for i, v in enumerate(vectors) if v is not None]
            out: dict[str, Any] = {"values": _pack(np.asarray([x for i in have for x in vectors[i].values],
                                                              dtype="<f4"))}
            if have != [i for i, b in enumerate(by) if b is not None]:
                out["spans"] = have
            other = {str(i): vectors[i].model for i in have if vectors[i].model != by[i]}
            if other:
                out["by"] = other
            return out

        return {
            "encoding": ENCODING,
            "rule": self.rule,
            "note": self.note,
            "models": {m: axis.to_dict(response) for m, axis in self.axes.items()},
            "full": None if self.full is None else {"model": self.full.model, "values": _pack(
                np.asarray(self.full.values, dtype="<f4"))},
            "sentences": level(self.sentences, sentences_by),
            "paragraphs": level(self.paragraphs, paragraphs_by),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, d: Any, response: str, sentences_by: Sequence[str | None],
                  paragraphs_by: Sequence[str | None]) -> PerToken:
        """Read and check the ``per_token`` block of a schema-2 result (``ValueError`` says what is wrong)."""
        if not isinstance(d, Mapping):
            raise ValueError("per_token must be an object (or null).")
        models = d.get("models")
        if not isinstance(models, Mapping) or not models:
            raise ValueError("per_token.models must be a non-empty object of model -> token axis.")
        axes = {str(m): TokenAxis.from_dict(str(m), a, response) for m, a in models.items()}
        rule = d.get("rule")
        if rule is not None and rule not in RULES:
            raise ValueError(f"per_token.rule must be one of {list(RULES)} or null, not {rule!r}.")
        note = d.get("note", "")
        if not isinstance(note, str):
            raise ValueError("per_token.note must be a string.")

        def level(key: str, by: Sequence[str | None]) -> tuple[TokenValues | None, ...]:
            block, where = d.get(key), f"per_token.{key}"
            if not isinstance(block, Mapping):
                raise ValueError(f"{where} must be an object with the packed values of its scored spans.")
            have = block.get("spans", [i for i, b in enumerate(by) if b is not None])
            if not (isinstance(have, list) and all(isinstance(i, int) and 0 <= i < len(by) for i in have)
                    and len(set(have)) == len(have)):
                raise ValueError(f"{where}.spans must list distinct {key[:-1]} indices (0 to {len(by) - 1}).")
            other = block.get("by", {})
            if not isinstance(other, Mapping):
                raise ValueError(f"{where}.by must be an object of span index -> model.")
            owners = [other.get(str(i), by[i]) for i in have]
            for i, m in zip(have, owners, strict=True):
                if m not in axes:
                    raise ValueError(f"{where}: {key[:-1]} {i} has values of {m!r}, not a model of per_token.models.")
            values = _unpack(block.get("values"), "<f4", f"{where}.values")
            need = sum(len(axes[m]) for m in owners)
            if len(values) != need:
                raise ValueError(f"{where}.values holds {len(values)} numbers; its {len(have)} span(s) need {need} "
                                 "(one per response token of the model that scored each).")
            out: list[TokenValues | None] = [None] * len(by)
            pos = 0
            for i, m in zip(have, owners, strict=True):
                n = len(axes[m])
                out[i] = TokenValues(m, tuple(float(x) for x in values[pos : pos + n]))
                pos += n
            return tuple(out)

        full = d.get("full")
        if full is not None:
            if not isinstance(full, Mapping) or full.get("model") not in axes:
                raise ValueError("per_token.full must be null or {model, values} with a model of per_token.models.")
            values = _unpack(full.get("values"), "<f4", "per_token.full.values")
            if len(values) != len(axes[full["model"]]):
                raise ValueError(f"per_token.full has {len(values)} values; {full['model']} has "
                                 f"{len(axes[full['model']])} response tokens.")
            full = TokenValues(full["model"], tuple(float(x) for x in values))
        extra = d.get("extra", {})
        if not isinstance(extra, Mapping):
            raise ValueError("per_token.extra must be an object.")
        return cls(axes, level("sentences", sentences_by), level("paragraphs", paragraphs_by), full, rule, note,
                   dict(extra))


def _pack(arr: np.ndarray) -> str:
    """Little-endian 4-byte values, byte-shuffled (all first bytes, then all second ...), zlib, base64."""
    raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1, 4).T.tobytes()
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def _unpack(text: Any, dtype: str, where: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ValueError(f"{where} must be a packed (base64) string.")
    try:
        raw = zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True))
    except (ValueError, UnicodeEncodeError, zlib.error):
        raise ValueError(f"{where} is not valid packed data (base64 of zlib-compressed bytes).") from None
    if len(raw) % 4:
        raise ValueError(f"{where} holds {len(raw)} bytes, not a whole number of 4-byte values.")
    arr = np.frombuffer(np.frombuffer(raw, dtype=np.uint8).reshape(4, -1).T.tobytes(), dtype=dtype)
    if dtype == "<f4" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{where} contains non-finite values.")
    return arr
