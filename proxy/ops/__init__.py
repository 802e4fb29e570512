"""What an operator sees of the proxy: its own time per request, and its Prometheus metrics."""
