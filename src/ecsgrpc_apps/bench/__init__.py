"""Benchmarks (not tests): ecsgrpc against the baselines users would pick instead.

Every figure is measured in the same process run as its baseline and reported
as a ratio, because the machines this runs on are shared and noisy.
"""
