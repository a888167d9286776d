"""Emulated BM1366 chains and boards: a bytes-in/bytes-out device core with a physical model, on ptys."""
