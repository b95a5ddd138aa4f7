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

import snapvault as sv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.service", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-access-log", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    try:
        settings = settings_from_env(os.environ)
        app = create_app(settings, env=os.environ)
    except (ConfigFileError, sv.SnapvaultError, OSError) as e:
        # One line, as the CLI prints: a missing repository, a wrong password, an unreadable file.
        print(f"error: {e}", file=sys.stderr)
        return 1
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        server_header=False,
        proxy_headers=False,
        access_log=not args.no_access_log,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
