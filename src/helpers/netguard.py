"""Offline profiles open no connection off this machine: a guard on socket connects and name look-ups that
raises, records every attempt (even one a library swallows) and is inherited by child Python processes."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

ENV_FLAG = "HELPERS_BLOCK_REMOTE"  # "1": every Python process started with it installs the guard (sitecustomize)
LOG_ENV = "HELPERS_NETWORK_LOG"  # optional: a file every blocked attempt is appended to, one JSON line each
SITE_DIR = Path(__file__).with_name("netguard_site")  # holds the sitecustomize.py child processes import
# Kept on the socket module, so that a second copy of this module (sitecustomize loads it by path) shares them.
_STATE = socket.__dict__.setdefault("_offline_guard", {
    "real": {"connect": socket.socket.connect, "connect_ex": socket.socket.connect_ex,
             "getaddrinfo": socket.getaddrinfo},
    "attempts": []})
_REAL, _attempts = _STATE["real"], _STATE["attempts"]


class RemoteConnectionBlocked(OSError):
    """A connection (or name look-up) off this machine under an offline profile."""


def is_local(host: Any) -> bool:
    """Whether a host (name, address text or bytes) is this machine: loopback, `localhost` or empty."""
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _block(what: str, target: Any) -> None:
    """Record a blocked attempt (in this process and in the log file, if one is set) and raise."""
    _attempts.append(target)
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "argv": sys.argv[:3], "what": what,
                                     "target": repr(target)}) + "\n")
    raise RemoteConnectionBlocked(f"{what} {target!r} blocked: this process runs an offline profile "
                                  f"({ENV_FLAG}=1), which must not leave this machine")


def _connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
        _block("connection to", address)
    return _REAL["connect"](self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address[0]):
        _block("connection to", address)
    return _REAL["connect_ex"](self, address)


def _is_address(host: Any) -> bool:
    """Whether a host is a numeric address (its look-up asks no name server; the connect is checked instead)."""
    try:
        ipaddress.ip_address((host.decode() if isinstance(host, bytes) else str(host)).split("%")[0])
        return True
    except ValueError:
        return False


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> list:
    if not (is_local(host) or _is_address(host)):
        _block("name look-up of", host)
    return _REAL["getaddrinfo"](host, *args, **kwargs)


_connect._guard = _connect_ex._guard = _getaddrinfo._guard = True  # how `active` recognises them


def active() -> bool:
    """Whether the guard is installed in this process."""
    return getattr(socket.socket.connect, "_guard", False)


def attempts() -> list[Any]:
    """The addresses this process was refused (the live list: a test clears the attempts it expected)."""
    return _attempts


def block_remote() -> None:
    """Install the guard in this process and in every Python process it starts (idempotent)."""
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = _connect, _connect_ex, _getaddrinfo
    os.environ[ENV_FLAG] = "1"
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(SITE_DIR) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE_DIR)] + [p for p in paths if p])


def allow_remote() -> None:
    """Remove the guard from this process and stop passing it on (tests that try both)."""
    socket.socket.connect, socket.socket.connect_ex = _REAL["connect"], _REAL["connect_ex"]
    socket.getaddrinfo = _REAL["getaddrinfo"]
    os.environ.pop(ENV_FLAG, None)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(SITE_DIR)]
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        os.environ.pop("PYTHONPATH", None)
    _attempts.clear()
