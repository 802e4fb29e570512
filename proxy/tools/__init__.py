"""Tools the gateway runs for a model: the MCP servers the operator declares, started,
kept and spoken to through the ``mcp`` SDK on a loop of their own, behind a synchronous
interface."""
