"""``zerotick keys generate --dir DIR [--force]``: the CURVE keys of a tcp deployment.

One key pair per service and one for the operator's CLI (``common.curve``): public keys in
``DIR/public``, secret keys 0600 in ``DIR/private`` (0700). Keep DIR out of images and version
control; mount each container only its own secret key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import curve


def cmd_keys(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    try:
        written = curve.generate(folder, force=args.force)
    except curve.CurveKeyError as exc:
        print(f"zerotick keys: {exc}", file=sys.stderr)
        return 1
    print(f"zerotick keys: {len(written)} files in {folder.resolve()}")
    for name in curve.KEY_NAMES:
        print(f"  {name:<12} {curve.public_path(folder, name)}  {curve.secret_path(folder, name)}")
    print("  set zmq.curve_dir to this folder (ZT_ZMQ__CURVE_DIR); secret keys never leave their host")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="CURVE keys for tcp (one per service and one for this CLI)")
    what = keys.add_subparsers(dest="keys_command", required=True)
    gen = what.add_parser("generate", help="create a key pair per service and one for the operator")
    gen.add_argument("--dir", required=True, help="folder to create them in (public/ and private/)")
    gen.add_argument("--force", action="store_true", help="replace existing keys")
    gen.set_defaults(func=cmd_keys)
