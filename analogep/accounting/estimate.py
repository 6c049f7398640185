"""What the accounting says of each way of doing one thing (the circuit, a GPU, this CPU):
its time, its energy and where the joules go. Every way is reported in this one form, so
the report can set them side by side."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Estimate:
    """Time and energy of one thing done one way, and where the joules go (name -> J)."""

    label: str
    seconds: float
    joules: float
    breakdown: dict[str, float] = field(default_factory=dict)
    notes: dict[str, float | str] = field(default_factory=dict)
