"""Run the proxy with ``python -m proxy``."""

from proxy.serving.cli import main

main()
