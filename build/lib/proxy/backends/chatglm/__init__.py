"""The chatglm backend: a chatglm.cpp model loaded in-process (``pip install .[chatglm]``)."""
