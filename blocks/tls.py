"""One TLS context per process for the HTTP clients (ServiceNow, forges).

httpx builds a context for every client it makes, loading the CA bundle each time (about 35 ms
of CPU); the adapters make a client per call, so they share this one, built the way httpx
builds its default (SSL_CERT_FILE or SSL_CERT_DIR when set, else certifi's bundle).
"""

from __future__ import annotations

import functools
import os
import ssl

__all__ = ["default_tls"]


@functools.cache
def default_tls() -> ssl.SSLContext:
    """The verifying TLS context httpx would build by default, made once."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
