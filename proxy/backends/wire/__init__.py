"""What every HTTP upstream shares: the connection, errors mapped, OpenAI's chat body and
answers, and the backends of servers that speak a public API."""
