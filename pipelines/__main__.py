"""`python -m pipelines` is the `custval` command."""

from pipelines.cli import main

main()
