"""The `cutover` command line, one module per command group."""
