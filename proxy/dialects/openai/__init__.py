"""OpenAI's APIs: chat completions, completions, embeddings and tokens. What chat completions
and completions share is read in ``request``, rendered in ``answer`` and streamed in
``stream``."""
