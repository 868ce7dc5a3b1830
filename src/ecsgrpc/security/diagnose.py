"""Turn grpc's connection errors into a sentence that names the likely cause.

gRPC reports a failed connection as ``UNAVAILABLE`` with details such as
``... Tls handshake failed (TSI_PROTOCOL_FAILURE): ... WRONG_VERSION_NUMBER``
or ``... Socket closed``. :func:`explain_connect_error` maps the usual TLS
mistakes to a hint; it is pure (tested on its own) and quotes only the
error text, never key material (grpc's messages hold none).
"""

from __future__ import annotations

__all__ = ["explain_connect_error", "last_error"]

_HINTS: tuple[tuple[str, str], ...] = (
    (
        "WRONG_VERSION_NUMBER",
        "TLS handshake failed: the server does not speak TLS "
        "(a TLS client against a plaintext server?)",
    ),
    (
        "certificate has expired",
        "TLS handshake failed: the server's certificate has expired",
    ),
    (
        "certificate is not yet valid",
        "TLS handshake failed: the server's certificate is not valid yet (clock skew?)",
    ),
    (
        "Hostname Verification",
        "TLS handshake failed: the server's certificate does not name the address dialled "
        "(set the TLS server name override to a name in the certificate)",
    ),
    (
        "CERTIFICATE_VERIFY_FAILED",
        "TLS handshake failed: the server's certificate is not signed by a trusted CA "
        "(wrong or missing CA bundle?)",
    ),
    (
        "CERTIFICATE_REQUIRED",
        "TLS handshake failed: the server requires a client certificate (mTLS)",
    ),
    ("handshake", "TLS handshake failed"),
    ("SSL_ERROR", "TLS handshake failed"),
)


def last_error(details: str) -> str:
    """The useful tail of grpc's ``failed to connect ...; last error: X`` details."""
    marker = "last error: "
    index = details.rfind(marker)
    text = details[index + len(marker) :] if index >= 0 else details
    return text.removesuffix(": OK").strip()


def explain_connect_error(details: str, *, tls: bool) -> str | None:
    """A hint for a connection error's details, or None when it is not about TLS.

    ``tls`` says whether the client used TLS: a server that closes the
    socket during setup means "it wants TLS" to a plaintext client, and "it
    wants a (trusted) client certificate" to a TLS client (with TLS 1.3 the
    server checks the client certificate after the client's handshake ends).
    """
    for needle, hint in _HINTS:
        if needle.lower() in details.lower():
            return hint
    if "socket closed" in details.lower() or "connection reset" in details.lower():
        if tls:
            return (
                "the server closed the connection after the TLS handshake: it may require a "
                "client certificate (mTLS) that was not sent, not trusted or expired"
            )
        return (
            "the server closed the connection during setup: it may require TLS "
            "(a plaintext client against a TLS server?)"
        )
    return None
