"""`python -m cutover.cli`."""

from cutover.cli.main import main

main()
