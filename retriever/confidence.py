"""Confidence: a calibrated probability that the top entry is the right one.

A logistic function of the top entry's fused score on the whitened vectors, of its lead over the
runner-up and (weights 0 by default) of its raw similarity and of the share of embedders that rank
it first; fitted on labelled questions (``kb eval --fit-confidence``): rank-fusion scores are not
confidences.
"""

from __future__ import annotations

import math

from kb.config import ConfidenceConfig


def confidence(top: float, gap: float, agreement: float, calibration: ConfidenceConfig, score: float = 0.0) -> float:
    """``top``: raw similarity; ``gap``: margin over the runner-up; ``score``: whitened fused score."""
    z = (
        calibration.bias
        + calibration.w_score * score
        + calibration.w_top * top
        + calibration.w_gap * gap
        + calibration.w_agree * agreement
    )
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
