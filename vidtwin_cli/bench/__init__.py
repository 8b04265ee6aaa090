"""Measuring the codec: quality metrics, speed, baselines at equal bytes, plots."""
