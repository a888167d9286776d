"""BM1366 chip and board drivers: pure codec, chip math, transports, board parts, discovery.

This package imports nothing from the other asicrc layers.
"""
