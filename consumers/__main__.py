"""`python -m consumers` is `amber`."""

from consumers.cli import main

main()
