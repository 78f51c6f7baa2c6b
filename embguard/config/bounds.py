"""The building blocks of every settings section: frozen, strict models and numeric bounds."""

from __future__ import annotations

import math
import numbers
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

# Bounds that keep every number usable downstream: inf/NaN are never a setting, and an int or float beyond
# these overflows timers, sleeps and Milvus limits (an interval of 1e17 s raised OverflowError in the scheduler).
MAX_INT = 2**31 - 1
MAX_SECONDS = 10 * 366 * 86400
PositiveFloat = Annotated[StrictFloat, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
PositiveInt = Annotated[StrictInt, Field(gt=0, le=MAX_INT)]
Seconds = Annotated[StrictInt, Field(gt=0, le=MAX_SECONDS)]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
Fraction = Annotated[StrictFloat, Field(gt=0, le=1, allow_inf_nan=False)]


# A feedback or label weight is stored as a Milvus FLOAT (float32): 1e300 would be stored as inf, 1e-50 as 0, and
# either would be skipped by training without a word. Weights are taken at the door only within these bounds.
MIN_WEIGHT = 1e-6
MAX_WEIGHT = 100.0


def weight_problem(weight: Any) -> str | None:
    """Why ``weight`` cannot be stored as a feedback weight (None when it can): a finite number in
    [MIN_WEIGHT, MAX_WEIGHT], well inside float32."""
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        return f"weight {weight!r:.80} must be a number from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}"
    value = float(weight)
    if not math.isfinite(value) or not MIN_WEIGHT <= value <= MAX_WEIGHT:
        return (
            f"weight {weight!r:.80} must be a finite number from {MIN_WEIGHT:g} to {MAX_WEIGHT:g} (weights are stored "
            "as float32; beyond that range they become inf or 0 and training skips them); rescale it into that "
            "range (1 is an ordinary label)"
        )
    return None


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
