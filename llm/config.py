"""What a call needs to know about an endpoint, detached from the ORM (llm.selectors loads it)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llm.capabilities import Capabilities


@dataclass(frozen=True)
class EndpointConfig:
    """What a call needs to know about an endpoint, detached from the ORM."""

    id: int
    name: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = 60.0
    max_retries: int = 3
    max_concurrency: int = 64
    requests_per_minute: int | None = None  # None: no limit (llm/ratelimit.py)
    tokens_per_minute: int | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()
    version: str = ""
    # Model name -> what its server accepts (llm.selectors.endpoint_config loads them), and when.
    capabilities: Mapping[str, Capabilities] = field(default_factory=dict, compare=False, repr=False)
    loaded_at: float = field(default=0.0, compare=False)

    @classmethod
    def from_endpoint(cls, endpoint: Any, *, capabilities: Mapping[str, Capabilities] | None = None,
                      loaded_at: float = 0.0) -> EndpointConfig:
        return cls(
            id=endpoint.pk,
            name=endpoint.name,
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=endpoint.timeout_seconds,
            max_retries=endpoint.max_retries,
            max_concurrency=endpoint.max_concurrency,
            requests_per_minute=endpoint.requests_per_minute,
            tokens_per_minute=endpoint.tokens_per_minute,
            extra_headers=tuple(sorted((endpoint.extra_headers or {}).items())),
            version=str(endpoint.updated_at.timestamp()) if endpoint.updated_at else "",
            capabilities=capabilities or {}, loaded_at=loaded_at,
        )


