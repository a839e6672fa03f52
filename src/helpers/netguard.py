"""Offline profiles open no connection off this machine: a guard on Python's socket connects, datagram sends and
name look-ups that raises, records every attempt (even one a library swallows) and is inherited by child Python
processes (not by processes started with -S or -I, nor by non-Python programs)."""

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
_METHODS = ("connect", "connect_ex", "sendto")  # socket methods taking an address (sendto: the last argument)
_LOOKUPS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr")  # functions taking a host first
# Kept on the socket module, so that a second copy of this module (sitecustomize loads it by path) shares them.
_STATE = socket.__dict__.setdefault("_offline_guard", {
    "real": {**{name: getattr(socket.socket, name) for name in _METHODS},
             **{name: getattr(socket, name) for name in _LOOKUPS}},
    "attempts": [], "inherited": False})
_REAL, _attempts = _STATE["real"], _STATE["attempts"]


class RemoteConnectionBlocked(OSError):
    """A connection (or name look-up) off this machine under an offline profile."""


def _text(host: Any) -> str | None:
    """A host as text (bytes decoded, undecodable bytes replaced so they count as remote)."""
    return host.decode("ascii", "replace") if isinstance(host, bytes) else host


def _is_address(host: Any) -> bool:
    """Whether a host is a numeric address (its look-up asks no name server; the connect is checked instead)."""
    try:
        ipaddress.ip_address(str(_text(host)).split("%")[0])
        return True
    except ValueError:
        return False


def is_local(host: Any) -> bool:
    """Whether a host (name, address text or bytes) is this machine: loopback, `localhost`, its own host name or
    empty."""
    host = _text(host)
    if host is None or str(host).lower() in ("", "localhost", socket.gethostname().lower()):
        return True
    return _is_address(host) and ipaddress.ip_address(str(host).split("%")[0]).is_loopback


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


def _guarded_method(name: str):
    """A socket method that blocks an internet address off this machine, then calls the real one."""
    real = _REAL[name]

    def method(self: socket.socket, *args: Any) -> Any:
        address = args[-1] if args else None
        if (self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
                and not is_local(address[0])):
            _block("connection to" if name != "sendto" else "datagram to", address)
        return real(self, *args)
    method._guard = True  # how `active` recognises the stand-ins
    return method


def _guarded_lookup(name: str):
    """A resolver function that blocks asking about a remote name (numeric addresses ask no name server)."""
    real = _REAL[name]

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not (is_local(host) or (name != "gethostbyaddr" and _is_address(host))):
            _block("name look-up of", host)
        return real(host, *args, **kwargs)
    lookup._guard = True
    return lookup


_GUARDED = {**{name: _guarded_method(name) for name in _METHODS}, **{name: _guarded_lookup(name) for name in _LOOKUPS}}


def active() -> bool:
    """Whether the guard is installed in this process."""
    return getattr(socket.socket.connect, "_guard", False)


def attempts() -> list[Any]:
    """The addresses this process was refused (the live list: a test clears the attempts it expected)."""
    return _attempts


def inherited() -> bool:
    """Whether the guard was installed at start-up, inherited from the process that started this one."""
    return bool(_STATE["inherited"])


def block_remote() -> None:
    """Install the guard in this process and in every Python process it starts (idempotent)."""
    for name in _METHODS:
        setattr(socket.socket, name, _GUARDED[name])
    for name in _LOOKUPS:
        setattr(socket, name, _GUARDED[name])
    os.environ[ENV_FLAG] = "1"
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(SITE_DIR) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE_DIR)] + [p for p in paths if p])


def allow_remote() -> None:
    """Remove the guard from this process and stop passing it on (tests that try both)."""
    for name in _METHODS:
        setattr(socket.socket, name, _REAL[name])
    for name in _LOOKUPS:
        setattr(socket, name, _REAL[name])
    os.environ.pop(ENV_FLAG, None)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(SITE_DIR)]
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        os.environ.pop("PYTHONPATH", None)
    _attempts.clear()
    _STATE["inherited"] = False
