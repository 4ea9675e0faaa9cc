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
        return dict(self.__dict__)
