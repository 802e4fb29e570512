"""The inspector: the exchanges kept of what clients asked and what they were answered
(:mod:`.capture`), in SQLite or in Redis (:mod:`.sqlite_exchanges`, :mod:`.redis_exchanges`),
where a turn left the server's cache (:mod:`.divergence`), and what the pages show whom
(:mod:`.visibility`)."""
