"""What every config dataclass shares: argument checks and the dict round trip.

The configs (`EncodingConfig`, `ExtractionConfig`, `ModelConfig`, `TrainConfig`, `SampleConfig`) are frozen
dataclasses that validate in `__post_init__` with `check`, and inherit `to_dict` / `from_dict` from `Config`:
`from_dict` refuses a non-dict or an unknown key with a `MelodyRNNError` that names it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, fields
from typing import Any, ClassVar, TypeVar

from melodyrnn.errors import MelodyRNNError

__all__ = ["Config", "check", "is_int", "is_real", "config_from_dict"]

C = TypeVar("C")


def check(condition: bool, message: str) -> None:
    """Raises `MelodyRNNError(message)` unless `condition`; messages name the argument, the expectation and what
    was received: "`temperature` must be > 0, got 0"."""
    if not condition:
        raise MelodyRNNError(message)


def is_int(value: Any) -> bool:
    """An integer that is not a bool (True is an int to Python, never to a config)."""
    if type(value) is int:  # the usual case, without the slower abstract-class check
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def config_from_dict(cls: type[C], d: Any, what: str | None = None) -> C:
    """Builds the config dataclass `cls` from a dict; missing fields take their defaults.

    Raises:
        MelodyRNNError: `d` is not a dict, has unknown fields, or a field is invalid (`cls` validates).
    """
    what = what or getattr(cls, "what", cls.__name__)
    if not isinstance(d, dict):
        raise MelodyRNNError(f"a {what} must be a dict, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - known, key=str)
    if unknown:
        raise MelodyRNNError(f"unknown {what} fields {unknown}; known fields are {sorted(known)}")
    try:
        return cls(**d)
    except TypeError as err:  # a field whose value breaks a comparison inside __post_init__
        raise MelodyRNNError(f"invalid {what}: {err}") from err


class Config:
    """Mixin for the frozen config dataclasses: `to_dict` and its inverse `from_dict`."""

    #: How error messages name this kind of config ("model config").
    what: ClassVar[str] = "config"

    def _require(self, ok: bool, name: str, expected: str) -> None:
        """For `__post_init__`: raises "`name` must be {expected}, got {value}" unless `ok`."""
        if not ok:
            raise MelodyRNNError(f"`{name}` must be {expected}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        """A plain, JSON-ready dict of every field."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: Any):
        """The inverse of `to_dict`; missing fields take their defaults.

        Raises:
            MelodyRNNError: `d` is not a dict, has unknown fields, or a field is invalid.
        """
        return config_from_dict(cls, d)
