"""The asicrc service and its command line: config, supervisors, safety envelope, plans, pipeline, HTTP."""
