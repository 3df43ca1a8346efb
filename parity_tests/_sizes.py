"""Sizes the CPU tests sweep across."""

MIDDLE_SIZE = 32768
"""8 x 4096 elements: a size between decode calls and ``FUSED_LIMIT`` (the fused op's
limit), where the sweeps take their middle row."""
