"""The model servers the proxy runs itself: their processes, the engine it bundles, their
memory, their saved KV caches, and under gunicorn the one process that runs them."""
