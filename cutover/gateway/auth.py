"""Who may use the public API, and which namespaces: the auth modes of `cutover serve --auth`.

- `none`: no authentication (loopback only, unless `--insecure-no-auth`);
- `tokens:PATH`: a token file (YAML or JSON) mapping each bearer token to the namespace prefixes it
  may use, e.g. `{"<token>": ["agents/a", "corp"]}`; a prefix matches itself and what lies under it
  ("corp" matches "corp" and "corp/1", not "corporate"), `*` matches every namespace. The file must
  be private (mode 0600 or stricter) and each token at least 32 characters;
- `trusted-proxy:CIDR[,CIDR...]`: an authenticating proxy in front of the gateway; requests must come
  from those addresses and carry `X-Cutover-Namespaces: prefix[,prefix...]`, the prefixes the proxy
  granted this caller.

Secret files in general (`private_secret`): refused when group or others may read them, or when
the secret is shorter than MIN_SECRET characters; the message says how to fix it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cutover.plan.errors import CutoverError
from cutover.store.records import NAMESPACE_PATTERN

MIN_SECRET = 32
PROXY_HEADER = "x-cutover-namespaces"


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def check_private(path: Path, what: str) -> None:
    """Refuse a secret file that group or others may read or write (CutoverError with the fix)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CutoverError(
            f"{what} {path} has mode {mode:04o}: group or others may read it",
            file=str(path),
            fix=f"chmod 600 {path}",
        )


def check_strength(secret: str, path: Path | str, what: str) -> None:
    if len(secret) < MIN_SECRET:
        raise CutoverError(
            f"{what} of {len(secret)} characters is too short (at least {MIN_SECRET})",
            file=str(path),
            fix='generate one: python3 -c "import secrets; print(secrets.token_urlsafe(32))"',
        )


def write_private(path: Path, text: str) -> None:
    """Create a file readable by its owner only, with that mode from creation (no window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _covers(prefix: str, namespace: str) -> bool:
    return prefix == "*" or namespace == prefix or namespace.startswith(prefix + "/")


@dataclass
class Auth:
    mode: str = "none"
    tokens: dict[bytes, tuple[str, ...]] = field(default_factory=dict)  # sha256(token) -> prefixes
    proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def describe(self) -> str:
        if self.mode == "tokens":
            return f"bearer tokens ({len(self.tokens)})"
        if self.mode == "trusted-proxy":
            return "trusted proxy " + ",".join(str(p) for p in self.proxies)
        return "none"

    def prefixes(self, headers: Mapping[str, str], client_host: str | None) -> tuple[str, ...] | None:
        """The namespace prefixes this request may use (None: any). Raises AuthError."""
        if self.mode == "none":
            return None
        if self.mode == "tokens":
            got = headers.get("authorization", "")
            if not got.startswith("Bearer "):
                raise AuthError(401, "missing bearer token: send Authorization: Bearer <token>")
            digest = hashlib.sha256(got[7:].encode("utf-8", "surrogateescape")).digest()
            for known, prefixes in self.tokens.items():
                if hmac.compare_digest(known, digest):
                    return prefixes
            raise AuthError(401, "unknown bearer token")
        try:
            addr = ipaddress.ip_address(client_host or "")
        except ValueError:
            raise AuthError(403, "request not from a trusted proxy") from None
        if not any(addr in net for net in self.proxies):
            raise AuthError(403, "request not from a trusted proxy")
        granted = headers.get(PROXY_HEADER)
        if not granted:
            raise AuthError(403, "the proxy sent no X-Cutover-Namespaces header")
        return tuple(p.strip() for p in granted.split(",") if p.strip())

    @staticmethod
    def authorize(prefixes: tuple[str, ...] | None, namespace: str) -> None:
        if prefixes is not None and not any(_covers(p, namespace) for p in prefixes):
            raise AuthError(403, f"namespace: this caller may not use namespace {namespace!r}")


def load_auth(spec: str) -> Auth:
    """`none`, `tokens:PATH` or `trusted-proxy:CIDR[,CIDR]` -> Auth (CutoverError when invalid)."""
    import re

    kind, _, arg = spec.partition(":")
    if kind == "none" and not arg:
        return Auth()
    if kind == "tokens" and arg:
        path = Path(arg)
        if not path.is_file():
            raise CutoverError("token file not found", file=arg, fix="give the path of the token file")
        check_private(path, "token file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as exc:
            raise CutoverError(f"unreadable token file: {str(exc).splitlines()[0]}", file=arg) from None
        if not isinstance(data, dict) or not data:
            raise CutoverError(
                "the token file must map each token to a list of namespace prefixes",
                file=arg,
                fix='e.g. {"<token>": ["agents/a", "corp"]}',
            )
        tokens: dict[bytes, tuple[str, ...]] = {}
        ns = re.compile(NAMESPACE_PATTERN)
        for i, (token, prefixes) in enumerate(data.items()):
            if not isinstance(token, str):
                raise CutoverError(f"entry {i + 1}: the token is not a string", file=arg)
            check_strength(token, arg, f"token {i + 1}")
            if isinstance(prefixes, str):
                prefixes = [prefixes]
            if not isinstance(prefixes, list) or not prefixes:
                raise CutoverError(f"token {i + 1}: give a list of namespace prefixes", file=arg)
            for p in prefixes:
                if not isinstance(p, str) or not (p == "*" or ns.match(p)):
                    raise CutoverError(
                        f"token {i + 1}: {p!r} is not a namespace prefix", file=arg, fix="use a namespace or *"
                    )
            tokens[hashlib.sha256(token.encode()).digest()] = tuple(prefixes)
        return Auth("tokens", tokens)
    if kind == "trusted-proxy" and arg:
        try:
            nets = tuple(ipaddress.ip_network(c.strip(), strict=False) for c in arg.split(",") if c.strip())
        except ValueError as exc:
            raise CutoverError(f"--auth {spec!r}: {exc}", fix="e.g. --auth trusted-proxy:10.0.0.5/32") from None
        if not nets:
            raise CutoverError(f"--auth {spec!r}: no proxy address", fix="e.g. --auth trusted-proxy:10.0.0.5/32")
        return Auth("trusted-proxy", proxies=nets)
    raise CutoverError(f"--auth {spec!r}", fix="use none, tokens:PATH (a token file) or trusted-proxy:CIDR[,CIDR...]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
