"""Ollama's own API (``/api/chat``, ``/api/generate``, ``/api/embed``, ``/api/tags``, …), both
ways: ``chat`` and ``generate`` are :class:`~proxy.dialects.dialect.Dialect` modules,
``catalog`` renders what Ollama's clients ask of the models before they pick one. What the
endpoints share is read in ``request`` and rendered in ``answer``; chat and generate stream in
``stream``.

Streams are newline-delimited JSON: one object per line, ``done: false`` until the last,
which carries ``done: true``, ``done_reason`` and the durations (nanoseconds) and token
counts; a stream that fails after its first line ends with an ``{"error": …}`` line.
"""
