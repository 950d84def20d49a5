"""Measurement tools (benchmarks, load test, calibration) and the live-server helpers the tests share."""
