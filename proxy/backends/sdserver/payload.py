"""What stable-diffusion.cpp's sd-server reads of OpenAI's image routes, and what the proxy
sends it for a drawing. Pure.

sd-server reads the prompt, ``n`` (at most 8), ``size`` (rounded up to multiples of 64),
``output_format`` and ``output_compression``, and takes everything else of its own (the
seed, steps, sampler, negative prompt…) as JSON inside the prompt, between
``<sd_cpp_extra_args>`` tags, which it strips. A client's own tags go as written. OpenAI's
``seed`` is folded into them, so the same seed draws the same picture however it was
given. sd-server answers every picture as ``b64_json`` (links, where asked, are the proxy's
own); every field it would not honour (a size it would change, ``quality``, ``style``…) is
refused by name.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from proxy.core.fields import Fields
from proxy.core.pictures import Drawing

READ = ("prompt", "n", "size", "output_format", "output_compression")  # sd-server's own
OWN = ("model", "response_format", "seed")  # read here: the model, the answer's form, the seed
EXTRA = re.compile(r"<sd_cpp_extra_args>(.*?)</sd_cpp_extra_args>")  # sd-server's own pattern
MOST_PICTURES = 8  # sd-server draws at most 8 at once
STEP = 64  # sd-server draws sizes in multiples of 64 pixels
SEEDS = (-(2**63), 2**63 - 1)  # sd.cpp's seed is an int64; a negative one draws at random


def fields(asked: Drawing) -> dict:
    """The fields sd-server is sent for ``asked`` (a generation's JSON, an edit's form),
    ``seed`` folded into the prompt; those it does not read refused by name."""
    given = Fields(dict(asked.fields))
    for name in asked.fields:
        if name not in READ and name not in OWN:
            raise given.fail(name, "is not read by sd-server, which draws this model")
    if asked.n > MOST_PICTURES:
        raise given.fail("n", f"may be at most {MOST_PICTURES}: sd-server draws no more at once")
    size = given.raw("size")
    if size not in (None, "auto") and any(int(side) % STEP for side in size.split("x")):
        raise given.fail("size", f"must be multiples of {STEP} pixels a side for sd-server")
    sent = {name: asked.fields[name] for name in READ if name in asked.fields}
    if size == "auto":  # sd-server's own: the size it was started with, or the picture's
        del sent["size"]
    seed = _seed(given)
    if seed is not None:
        sent["prompt"] = seeded(given.required("prompt"), seed, given)
    return sent


def seeded(prompt: str, seed: int, given: Fields) -> str:
    """``prompt`` with ``seed`` among its extra arguments: in the client's own tags, or in
    tags of its own at the end."""
    found = EXTRA.search(prompt)
    if found is None:
        return f"{prompt}<sd_cpp_extra_args>{json.dumps({'seed': seed})}</sd_cpp_extra_args>"
    try:
        extra = json.loads(found[1])
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        raise given.fail("prompt", "holds <sd_cpp_extra_args> that are not a JSON object")
    if extra.get("seed", seed) != seed:
        raise given.fail("seed", "differs from the seed in the prompt's <sd_cpp_extra_args>")
    return prompt[: found.start(1)] + json.dumps({**extra, "seed": seed}) + prompt[found.end(1) :]


def _seed(given: Fields) -> Optional[int]:
    """The drawing's seed: a JSON integer, or a form's digits."""
    value: Any = given.raw("seed")
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value):
        value = int(value)
    if value is None:
        return None
    if type(value) is not int or not SEEDS[0] <= value <= SEEDS[1]:
        raise given.fail("seed", "must be a whole number (a 64-bit integer)")
    return value
