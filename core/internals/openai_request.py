"""The options of a POST through the openai SDK's client, copied from a template instead of constructed.

Checked against openai 3.57.0 (pydantic 2): `AsyncAPIClient.post(path, cast_to=, body=, options=,
stream=)` builds `FinalRequestOptions.construct(method="post", url=path, json_data=body, ...,
**options)` and hands it to `AsyncAPIClient.request(cast_to, options, stream=, stream_cls=)`, which
copies it before each attempt. `construct` is pydantic's `model_construct`, which deep-copies the
mutable defaults (`params`, `security`) of every request; it was a sixth of the CPU a call costs the
engine (docs/performance.md, "Experiments"). `post_options` gives the same options from a shallow
copy of a template with fresh copies of those two. `FinalRequestOptions` lives in the SDK's private
`openai._models`; llm/client.py is the only user. tests/core/internals/test_openai_request.py
compares them with `construct`'s.
"""
from __future__ import annotations

from typing import Any

from openai._models import FinalRequestOptions

__all__ = ["FinalRequestOptions", "post_options"]

_templates: dict[str, FinalRequestOptions] = {}


def post_options(path: str, body: Any, idempotency_key: str) -> FinalRequestOptions:
    """What `post(path, body=body, options={"idempotency_key": ...})` hands to `request`."""
    template = _templates.get(path)
    if template is None:
        template = _templates[path] = FinalRequestOptions.construct(method="post", url=path, content=None, files=None)
    options = template.model_copy()
    state = options.__dict__
    state["params"] = dict(template.params)
    state["security"] = dict(template.security)
    state["json_data"] = body
    state["idempotency_key"] = idempotency_key
    options.__pydantic_fields_set__.update(("json_data", "idempotency_key"))
    return options
