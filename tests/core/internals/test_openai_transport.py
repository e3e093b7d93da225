"""The SDK's vendored aiohttp transport: where llm/pool.py finds it, and an HTTP round trip through it."""
import aiohttp
import httpx2
import openai

from core.internals.openai_transport import AiohttpTransport
from tests.fake_llm import FakeLLM


async def test_a_request_through_the_transport_reaches_the_server(fake_llm: FakeLLM) -> None:
    made: list[aiohttp.ClientSession] = []

    def session() -> aiohttp.ClientSession:
        made.append(aiohttp.ClientSession())
        return made[-1]

    transport = AiohttpTransport(client=session)
    assert isinstance(transport, httpx2.AsyncBaseTransport)
    async with httpx2.AsyncClient(transport=transport) as client:
        response = await client.get(f"{fake_llm.url}/health")
    assert response.status_code == 200
    assert len(made) == 1 and made[0].closed  # made on first use, closed with the client


async def test_the_sdk_client_takes_it_and_completes_a_chat(fake_llm: FakeLLM) -> None:
    transport = AiohttpTransport(client=aiohttp.ClientSession)
    async with openai.AsyncOpenAI(base_url=fake_llm.base_url, api_key="sk-test",
                                  http_client=openai.DefaultAioHttpClient(transport=transport)) as sdk:
        completion = await sdk.chat.completions.create(model="gpt-4o-mini",
                                                       messages=[{"role": "user", "content": "hello"}])
    assert completion.choices[0].message.content
