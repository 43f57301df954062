"""`python -m cutover`."""

from cutover.cli.main import main

main()
