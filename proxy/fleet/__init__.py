"""Where a request runs: admission to an upstream's slots (and, next, models and placement)."""
