"""Structured output: JSON Schema grammars and the tool-call formats of model families."""
