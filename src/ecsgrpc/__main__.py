"""``python -m ecsgrpc`` runs the CLI."""

from ecsgrpc.cli import main

main()
