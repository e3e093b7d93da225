"""The SDK's request options from a template: the same as `post` constructs, and a chat through them."""
import httpx2
import openai
from openai import NotGiven

from core.internals.openai_request import FinalRequestOptions, post_options
from tests.fake_llm import FakeLLM


def _comparable(options: FinalRequestOptions) -> dict[str, object]:
    # NotGiven has no equality: one instance per default, so compare its type.
    return {name: NotGiven if isinstance(value, NotGiven) else value for name, value in options.__dict__.items()}


def test_the_options_are_those_post_constructs() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    made = FinalRequestOptions.construct(method="post", url="/chat/completions", json_data=body, content=None,
                                         files=None, idempotency_key="key-1")
    copied = post_options("/chat/completions", body, "key-1")
    assert _comparable(copied) == _comparable(made)
    assert copied.model_fields_set == made.model_fields_set


def test_no_two_options_share_a_mutable_value() -> None:
    first, second = post_options("/chat/completions", {}, "a"), post_options("/chat/completions", {}, "b")
    first.params["q"] = "1"
    first.security["bearer_auth"] = False
    assert second.params == {} and second.security["bearer_auth"] is True
    assert post_options("/chat/completions", {}, "c").params == {}
    assert (first.idempotency_key, second.idempotency_key) == ("a", "b")


async def test_a_chat_goes_through_request_with_them(fake_llm: FakeLLM) -> None:
    async with openai.AsyncOpenAI(base_url=fake_llm.base_url, api_key="sk-test", max_retries=0) as sdk:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
        raw = await sdk.request(httpx2.Response, post_options("/chat/completions", body, "key-2"), stream=False,
                                stream_cls=None)
    assert raw.status_code == 200 and raw.json()["choices"][0]["message"]["content"]
    assert fake_llm.stats()["chat_requests"] == 1
