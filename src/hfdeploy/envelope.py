"""The answer envelope: Result, Confidence, Uncertainty Factors, Verification.

Every capability can state its answer this way, for people and for agents: what the
answer is, how sure it is and why, what could make it wrong, and which commands check
it. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Confidence", "Envelope", "lowest"]

Confidence = Literal["high", "medium", "low"]
_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2}


def lowest(*levels: Confidence) -> Confidence:
    """The weakest of several confidence levels."""
    return min(levels, key=lambda c: _ORDER[c])


@dataclass(frozen=True, slots=True)
class Envelope:
    """An answer with its confidence, the factors that could change it, and checks."""

    result: str
    confidence: Confidence
    confidence_why: str
    uncertainty_factors: tuple[str, ...] = ()
    verification: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "confidence": self.confidence,
            "confidence_why": self.confidence_why,
            "uncertainty_factors": list(self.uncertainty_factors),
            "verification": list(self.verification),
        }

    def to_text(self) -> str:
        """The readable form, one heading per part."""
        lines = [
            f"Result: {self.result}",
            f"Confidence: {self.confidence} ({self.confidence_why})",
            "Uncertainty Factors:",
            *(f"- {f}" for f in self.uncertainty_factors or ("none identified",)),
            "Verification:",
            *(f"- {v}" for v in self.verification),
        ]
        return "\n".join(lines)
