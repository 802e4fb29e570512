"""The benchmark: what the proxy costs next to talking to the upstream directly."""
