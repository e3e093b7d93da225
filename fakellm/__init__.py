"""A fake OpenAI-compatible server for development, the demo, tests and the benchmark; not part of the product.

`manage.py fake_llm` serves it (fakellm/server.py); `--dialect` answers as vLLM, Ollama, llama.cpp,
LM Studio or a strict server (fakellm/dialects.py, docs/compatibility.md).
"""
