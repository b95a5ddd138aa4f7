"""``python -m examples.service [--host H] [--port P]``: run the service with uvicorn.

The configuration comes from the file ``SNAPVAULT_SERVICE_CONFIG`` names (see
``config.example.toml``); ``SNAPVAULT_SERVICE_REPOSITORY`` and
``SNAPVAULT_SERVICE_PASSWORD_FILE`` override its repository URL and password file.
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn
from examples.service.app import create_app
from examples.service.config import ConfigFileError, settings_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.service", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        settings = settings_from_env(os.environ)
    except ConfigFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    app = create_app(settings, env=os.environ)
    uvicorn.run(app, host=args.host, port=args.port, server_header=False, proxy_headers=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
