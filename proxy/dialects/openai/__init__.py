"""OpenAI's APIs: chat completions, completions, embeddings and tokens, and what they share."""
