"""Who may call the proxy: named keys, the models each may use, their limits, their usage."""
