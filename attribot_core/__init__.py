"""AttriBoT Studio's engine: fast, exact leave-one-out context attribution on local models.

Never imports streamlit: everything the app shows, the CLI and a notebook can get too.
"""

import os as _os

# Idle OpenMP threads that spin made every forward pass ~10x slower whenever another process used the
# CPU (measured on 2 cores). Must be set before torch loads, which this package does lazily.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .api import InputError, attribute, check_inputs
from .generate import generate_response
from .methods import METHODS, MethodOutput, MethodSpec, get_method
from .models import DEFAULT_MODEL, PRESETS, LoadedModel, ModelError, load_model, preset_status
from .pertoken import PerToken, SpanNeedsRerun, TokenAxis, TokenValues
from .prompt import DEFAULT_TEMPLATE, PromptBuilder, Response
from .result import AttributionResult, SpanScore
from .runs.batch import attribute_many
from .scoring import ContextTooLong, LocalScorer, Scorer, ScorerStats
from .segment import Document, Span, segment

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TEMPLATE",
    "METHODS",
    "PRESETS",
    "AttributionResult",
    "ContextTooLong",
    "Document",
    "InputError",
    "LoadedModel",
    "LocalScorer",
    "MethodOutput",
    "MethodSpec",
    "ModelError",
    "PerToken",
    "PromptBuilder",
    "Response",
    "Scorer",
    "ScorerStats",
    "Span",
    "SpanNeedsRerun",
    "SpanScore",
    "TokenAxis",
    "TokenValues",
    "attribute",
    "check_inputs",
    "attribute_many",
    "generate_response",
    "get_method",
    "load_model",
    "preset_status",
    "segment",
]
