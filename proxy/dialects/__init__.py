"""Client APIs at the edge: one module per API, each parsing its bodies into the proxy's own
request values and rendering the core's answers (whole, or events as a stream) into its own
bodies and events. Pure: no Flask, no HTTP, no backend; table-tested.
"""
