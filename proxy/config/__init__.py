"""What the operator decides: the settings from flags and environment, the models file, TOML."""
