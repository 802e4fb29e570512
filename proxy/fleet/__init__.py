"""Where a request runs: models and aliases, admission to slots, placement, health."""
