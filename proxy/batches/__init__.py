"""Files and batches: a JSONL file of requests a key uploads (OpenAI's Files API), the batch it
makes of it (the Batch API, and Anthropic's Message Batches), the queue of their requests, and
the runner that answers them as the key's own at the lowest priority when a slot is idle. The
stores (:mod:`.files`, :mod:`.store`) and queues (:mod:`.queue`, :mod:`.redisqueue`) know no
web; the runner (:mod:`.runner`) and the views (:mod:`.views`, :mod:`.messagebatches`) stand
on the API, and :mod:`.build` makes them all from the settings."""
