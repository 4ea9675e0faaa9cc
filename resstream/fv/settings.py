"""The settings of one layer's feature visualizations, as the FV jobs receive them.

A module of its own (no imports beyond the standard library): the study plan
(:mod:`resstream.workflow.config`) makes them, the FV jobs (:mod:`resstream.fv.job`) take them, and neither
needs the other's code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FVSettings:
    steps: int
    lr: float
    jitter: int
    hook: str
    seed: int
    rf_crop: bool
    bf16: bool
    microbatch: int | None
    channels_last: bool
    tf32: bool

    def as_params(self) -> dict:
        """The settings as a rule's param (JSON) and as keyword arguments of the renderer."""
        return dict(self.__dict__)

    @classmethod
    def from_params(cls, params: dict | FVSettings) -> FVSettings:
        """The settings from a rule's param (:meth:`as_params`); every field, no other key."""
        return params if isinstance(params, cls) else cls(**params)

    @classmethod
    def from_record(cls, recorded: dict) -> FVSettings:
        """The settings among what an FV file records (which also says how the job ran)."""
        return cls(**{name: recorded[name] for name in cls.__dataclass_fields__})
