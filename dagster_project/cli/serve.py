"""`metrics serve`: the read API (dagster_project/api) under uvicorn, on loopback by default."""
from __future__ import annotations

import argparse
import os
import socket
import sys


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if not 1 <= n <= 65535:  # (the OS would take 99999 modulo 65536: another port than the one printed)
        raise argparse.ArgumentTypeError(f"`{text}`: a port is from 1 to 65535")
    return n


def add_parser(sub, with_target) -> None:
    sp = sub.add_parser("serve", help="serve series, summaries and per-entity totals over HTTP (read-only)")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    sp.add_argument("--port", type=_port, default=8000)
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
    # the address is tried first: "serving on ..." then uvicorn's "address already in use"
    # said two contradicting things
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.create_server((args.host, args.port), family=family):
            pass
    except OSError as err:
        print(f"error: cannot serve on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 2
    try:
        app = create_app(paths, args.target)
    except Exception as err:  # noqa: BLE001 - a clear line, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"serving {args.target} on http://{args.host}:{args.port} (OpenAPI: /openapi.json, docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
