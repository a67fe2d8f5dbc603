"""What every request body shares: strict validation, with JSON's own notion of an integer.

Strict, so that what is accepted is what the schema says: a boolean field refuses
``"true"`` and ``1``, a string field refuses ``5``. JSON Schema counts ``21.0`` as an
integer, so :data:`Int` takes a float with no fraction as its integer.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["Body", "Int", "PositiveInt", "SafeInt"]


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The constraints go before the validator, or the JSON schema shows them as raw ``gt``
# keys instead of ``exclusiveMinimum`` when the field is a union with None.
Int = Annotated[int, BeforeValidator(_integral)]
PositiveInt = Annotated[int, Field(gt=0), BeforeValidator(_integral)]
#: The integers every JSON reader holds exactly (RFC 7493, I-JSON): past 2**53, a float
#: reader rounds, and a bound at 2**63 is not the same number for client and server.
SafeInt = Annotated[int, Field(ge=-(2**53 - 1), le=2**53 - 1), BeforeValidator(_integral)]


class Body(BaseModel):
    """A request body: strict, and fields it does not know are ignored (as OpenAI's and
    TEI's servers do)."""

    model_config = ConfigDict(extra="ignore", strict=True)
