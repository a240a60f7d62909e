"""``sim.port = 0`` means an ephemeral port for the embedded venue. Under ``zerotick up`` the port is
chosen once, before anything starts, and recorded in ``<run_dir>/sim.port``: the venue binds it and
every service and command dials it (``Settings.sim_port``), across restarts of any of them. The
venue run alone (``zerotick sim``) with nothing recorded binds a port of the kernel's choosing and
prints it in its ready line.
"""

from __future__ import annotations

import socket
from pathlib import Path

from common.private_files import FILE_MODE

SIM_PORT_FILE = "sim.port"


def pick_free_port(host: str) -> int:
    """A port free on ``host`` right now (the kernel's choice; it stays unused until the venue binds
    it unless another program takes it in between, which the venue's bind error then says)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def record(run_dir: Path, port: int) -> None:
    path = run_dir / SIM_PORT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{port}\n")
    tmp.chmod(FILE_MODE)
    tmp.replace(path)


def recorded(run_dir: Path) -> int:
    """The recorded port, or 0 when none is (or the record is unusable)."""
    try:
        port = int((run_dir / SIM_PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return 0
    return port if 0 < port < 65536 else 0
