"""The body of the Pulumi program (`infra/__main__.py` is a thin shell over it)."""
