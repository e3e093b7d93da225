"""The project's fake OpenAI server (fakellm.server) as a standalone process, without Django.

    python bench/fake_server.py --port 8001 --latency-ms 50 --tokens 20 [--inter-token-ms 0]

Same app and reply text as `manage.py fake_llm`; the benchmark starts one per server latency.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakellm.server import Settings, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--inter-token-ms", type=float, default=0.0)
    parser.add_argument("--tokens", type=int, default=20)
    args = parser.parse_args()
    serve(args.host, args.port, Settings(latency_ms=args.latency_ms, inter_token_ms=args.inter_token_ms,
                                         tokens=args.tokens))


if __name__ == "__main__":
    main()
