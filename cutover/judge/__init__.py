"""The judge: drift measures, the canary verdict and its statistics, reports, gate evidence and the
gate itself."""
