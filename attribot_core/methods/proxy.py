"""Proxy LOO: exact LOO computed by a smaller model on the target's response.

The response travels as text when the proxy's tokenizer differs, and as the target's own token ids
when it is the same tokenizer, so same-family proxies score exactly the tokens the target produced.
The target itself is never run: ``log_prob_full`` is ``None`` and the proxy's own value is kept in
``extra["proxy_log_prob_full"]``.

Per-token values are over the proxy's own response tokens (the target's ids within one tokenizer,
else the proxy's encoding of the response text, mapped to response characters by their offsets).
"""

from __future__ import annotations

from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import MethodOutput
from .loo import exact_loo


def proxy_loo(
    doc: Document,
    target: Scorer,
    proxy: Scorer,
    *,
    paragraphs: bool = True,
    progress: ProgressFn | None = None,
) -> MethodOutput:
    out = exact_loo(doc, proxy, paragraphs=paragraphs, progress=progress)
    out.extra["proxy_log_prob_full"], out.log_prob_full = out.log_prob_full, None
    return out
