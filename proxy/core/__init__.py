"""The core: plain values, errors, request fields, the event stream every answer is told in,
and the generation that runs a request's choices and tells it."""
