"""Run the proxy with ``python -m proxy``."""
from proxy.cli import main

main()
