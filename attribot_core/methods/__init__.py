"""Attribution methods: each decides which ablations to ask a scorer for."""

from .base import MethodOutput
from .registry import METHODS, PARAM_CHOICES, MethodSpec, get_method, register

__all__ = ["METHODS", "PARAM_CHOICES", "MethodOutput", "MethodSpec", "get_method", "register"]
