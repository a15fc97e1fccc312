"""What an endpoint URL says about the server behind it: AWS, or an emulator on this machine.

Operator services ask before sending a request some emulators cannot answer (a move task, a
CloudWatch read): an emulator on the loopback interface gets the fallback directly, so nothing
is sent that it would answer with a traceback in the `orgsync local up` terminal.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_local_endpoint(endpoint_url: str | None) -> bool:
    """True for an endpoint on this machine (localhost, 127.0.0.0/8, ::1); False for AWS."""
    if not endpoint_url:
        return False
    host = (urlsplit(endpoint_url).hostname or "").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
