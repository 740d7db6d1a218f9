"""Throwaway certificate authorities and certificates for TLS tests, made with the ``openssl``
command (as docs/security.md's worked setup does), so no test depends on a Python crypto package.

``make_pki(directory)`` writes a CA, a certificate for ``127.0.0.1``/``localhost`` that serves
both as a server's and a client's (every component of a test cluster uses it), and a second,
unrelated CA with its own certificate, for the "wrong CA" cases.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

from spider import rpc

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
_NODE_EXTENSIONS = (
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    "extendedKeyUsage=serverAuth,clientAuth\n"
    "keyUsage=critical,digitalSignature\n"
    "authorityKeyIdentifier=keyid\n"
    "basicConstraints=critical,CA:FALSE\n"
)


@attrs.frozen
class Authority:
    """A CA and the one node certificate it signed."""

    ca: Path
    cert: Path
    key: Path

    def server_tls(self, *, require_client_cert: bool = False) -> rpc.TlsConfig:
        return rpc.TlsConfig(
            ca=self.ca, cert=self.cert, key=self.key, require_client_cert=require_client_cert
        )

    def client_tls(self, *, with_cert: bool = True) -> rpc.TlsConfig:
        if not with_cert:
            return rpc.TlsConfig(ca=self.ca)
        return rpc.TlsConfig(ca=self.ca, cert=self.cert, key=self.key)


@attrs.frozen
class Pki:
    cluster: Authority
    """The cluster's CA and certificate."""
    stranger: Authority
    """Another CA, which the cluster does not trust (and which does not trust the cluster)."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _authority(directory: Path, name: str) -> Authority:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *_KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", f"/CN={name} test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", *_KEY, "-keyout", "node.key", "-out", "node.csr", "-subj", f"/CN={name} node",
        cwd=directory,
    )  # fmt: skip
    (directory / "node.ext").write_text(_NODE_EXTENSIONS)
    _openssl(
        "x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "node.pem", "-days", "2", "-extfile", "node.ext",
        cwd=directory,
    )  # fmt: skip
    return Authority(directory / "ca.pem", directory / "node.pem", directory / "node.key")


def make_pki(directory: Path) -> Pki:
    """A cluster CA and a stranger CA, each with a node certificate, under ``directory``."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    return Pki(
        _authority(directory / "cluster", "cluster"), _authority(directory / "stranger", "stranger")
    )
