"""Distinguished names in the grid's slash form (/DC=org/O=Example/CN=Jane Doe).

Grid tools, gridmap files and signing policies all write DNs this way, so our logs and status
output do too: an operator can paste them into those files.
"""

from __future__ import annotations

from cryptography import x509


def grid_dn(name: x509.Name) -> str:
    """The OpenSSL 'oneline' form, most significant part first."""
    return "".join(f"/{attribute.rfc4514_string()}" for attribute in name)
