"""`metrics serve`: the read API (dagster_project/api) under uvicorn, on loopback by default."""
from __future__ import annotations

import os
import sys


def add_parser(sub, with_target) -> None:
    sp = sub.add_parser("serve", help="serve series, summaries and per-entity totals over HTTP (read-only)")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    sp.add_argument("--port", type=int, default=8000)
    with_target(sp)
    sp.set_defaults(func=cmd_serve)


def cmd_serve(args, paths) -> int:
    import uvicorn

    from ..api.app import create_app
    from ..api.state import SERVED
    if args.target not in SERVED:
        print(f"error: {args.target}: `metrics serve` reads {', '.join(SERVED)}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get("METRICS_API_TOKEN"):
        print(f"warning: serving on {args.host} without METRICS_API_TOKEN: anyone who reaches it can read",
              file=sys.stderr)
    try:
        app = create_app(paths, args.target)
    except Exception as err:  # noqa: BLE001 - a clear line, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"serving {args.target} on http://{args.host}:{args.port} (OpenAPI: /openapi.json, docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
