"""Readout, tasks, reservoirs (esn, poisson-null, asic, spiking), features and timing statistics."""
