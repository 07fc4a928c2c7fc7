"""Measurement: metrics, their names, out-of-distribution scores, Pareto ranking and plots."""
