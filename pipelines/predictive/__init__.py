"""Predictive CLV: BG/NBD and Gamma-Gamma fitted on the marts' inputs, predictions and backtests."""
