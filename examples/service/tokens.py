"""``python -m examples.service.tokens new --role operator [--name NAME]``: mint an API token.

Prints the token once (give it to the client; it is not stored anywhere) and the
``[[auth.tokens]]`` entry to paste into the configuration file, which holds only its hash.
``python -m examples.service.tokens hash`` reads a token on standard input and prints its hash.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from examples.service.auth import hash_token, new_token
from examples.service.config import ROLES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.service.tokens", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="mint a token and print its configuration entry")
    new.add_argument("--role", choices=ROLES, required=True)
    new.add_argument("--name", help="a name for logs (default: ROLE-<random>)")
    sub.add_parser("hash", help="print the hash of a token read on standard input")
    args = parser.parse_args(argv)
    if args.command == "hash":
        token = sys.stdin.readline().strip()
        if not token:
            print("error: no token on standard input", file=sys.stderr)
            return 1
        print(hash_token(token))
        return 0
    token = new_token()
    name = args.name or f"{args.role}-{secrets.token_hex(3)}"
    print(f"token (shown once): {token}", file=sys.stderr)
    print(f'[[auth.tokens]]\nname = "{name}"\nrole = "{args.role}"\nhash = "{hash_token(token)}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
