"""Attribution methods: each decides which ablations to ask a scorer for."""

from .base import MethodOutput
from .registry import METHODS, MethodSpec, get_method, register

__all__ = ["METHODS", "MethodOutput", "MethodSpec", "get_method", "register"]
