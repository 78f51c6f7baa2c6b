"""The building blocks of every settings section: frozen, strict models and numeric bounds."""

from __future__ import annotations

from typing import Annotated

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


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
