"""The queue for an upstream's slots: requests take turns by party (:mod:`.fair`), lease a slot
for as long as they run (:mod:`.admission`, :mod:`.lease`), and, where processes share the
upstream, wait in the queue they share (:mod:`.shared`): the supervisor's for gunicorn's
workers (:mod:`.supervised`, reached by :mod:`.remote`), or Redis's for proxies sharing
``--redis-url`` (:mod:`.redisshared`, by the scripts of :mod:`.redisscripts`)."""
