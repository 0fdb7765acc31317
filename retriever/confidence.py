"""Confidence: a calibrated probability that the top entry is the right one.

It is a logistic function of the fused top score and of its gap to the runner-up, fitted on
labelled questions (``kb eval --calibrate``); rank-fusion scores are not confidences.
"""

from __future__ import annotations

import math

from kb.config import ConfidenceConfig


def confidence(top: float, gap: float, calibration: ConfidenceConfig) -> float:
    z = calibration.bias + calibration.w_top * top + calibration.w_gap * gap
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
