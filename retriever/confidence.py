"""Confidence: a calibrated probability that the top entry is the right one.

It is a logistic function of the fused top score, of its gap to the runner-up and of the share of
embedders that rank the top entry first, fitted on labelled questions (``kb eval
--fit-confidence``); rank-fusion scores are not confidences.
"""

from __future__ import annotations

import math

from kb.config import ConfidenceConfig


def confidence(top: float, gap: float, agreement: float, calibration: ConfidenceConfig) -> float:
    z = calibration.bias + calibration.w_top * top + calibration.w_gap * gap + calibration.w_agree * agreement
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
