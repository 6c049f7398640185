"""model.yaml's `train.substrate` section: how the crossbar devices write their own update
when train.update is `substrate` (analogep/training/substrate.py).

Stochastic pulse coincidence (Gokmen & Vlasov 2016, Front. Neurosci. 10, 333): every row and
column driver emits `bl` pulse slots whose firing probabilities encode its activity; a device
steps one pulse where a row pulse and a column pulse coincide. The scheme is the one aihwkit
calls STOCHASTIC_COMPRESSED (IBM/aihwkit, `PulseType.STOCHASTIC_COMPRESSED`, `desired_bl`,
with `update_bl_management` and `update_management`: the probability scales are balanced
between rows and columns per point). Read only when train.update is substrate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from analogep.config.schema import meta


@dataclass(frozen=True)
class SubstrateSpec:
    """The on-substrate update: plain SGD written by coincident row and column pulses."""

    bl: int = field(
        default=31,
        metadata=meta("pulse slots per row/column per coincidence pass (aihwkit's desired_bl, default 31)", ge=1),
    )
    group_size: int = field(
        default=1,
        metadata=meta(
            "training points whose phases see the same devices; the devices are written after each group "
            "(1: per point, online SGD)", ge=1,
        ),
    )
    lr: float = field(
        default=0.1,
        metadata=meta("SGD learning rate: a batch's writes add up to -lr times the batch-mean EP gradient", gt=0),
    )
    difference: Literal["held", "two_trains"] = field(
        default="held",
        metadata=meta(
            "held: one phase's activities on sample-and-hold capacitors, the drivers encode sums and differences "
            "(two passes: dx (x), sum(d) and sum(x), dd); two_trains: each phase's product its own pulse train, "
            "the +beta one potentiating and the -beta one depressing"
        ),
    )
    seed: int = field(default=0, metadata=meta("seed of the row and column pulse streams", ge=0))
