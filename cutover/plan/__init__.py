"""The plan layer: the rollout plan's model, the stack settings, the metrics contract, and where a
project lives. Imports nothing else of cutover."""
