"""Attribution methods: each decides which ablations to ask a scorer for."""

from .base import MethodOutput
from .registry import METHODS, MethodSpec, ParamSpec, get_method, register, unregister

__all__ = ["METHODS", "MethodOutput", "MethodSpec", "ParamSpec", "get_method", "register", "unregister"]
