"""Which addresses a notice may go to: e-mail syntax, and webhook URLs that cannot be turned
against the servers policyflow runs beside (link-local and cloud metadata addresses never;
loopback and private networks only when NOTIFY_ALLOW_PRIVATE_URLS is set). Webhook hosts are
checked when a subscription is saved and again, resolved, each time a notice is sent.

Not covered: DNS rebinding. The check at send time resolves the name, then httpx resolves it again
to connect; a name whose answer changes in between (a short TTL) could reach an address the check
refused. httpx's public API does not report the peer address before the request is sent, so closing
this gap would mean a custom transport connecting to the checked address; until then an operator
who must exclude it sends webhooks through an egress proxy that applies the same rules."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

# Cloud instance metadata: AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba Cloud, Oracle Cloud.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.azure.internal"})
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$"
)


class AddressRefused(ValueError):
    """A plain-words reason, shown to the person who gave the address."""


def check_email(address: str) -> str:
    address = address.strip()
    if len(address) > 254 or "\n" in address or not _EMAIL.match(address):
        raise AddressRefused(f"“{address[:80]}”不是有效的电子邮箱地址 (not a valid e-mail address)")
    return address


def _refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "云主机元数据地址 (a cloud metadata address)"
    if ip.is_link_local:
        return "链路本地地址 (a link-local address)"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "无法投递的地址 (not an address one can send to)"
    if not allow_private and (ip.is_loopback or ip.is_private):
        return "本机或内网地址，仅在 NOTIFY_ALLOW_PRIVATE_URLS=1 时允许 (a loopback or private address)"
    return None


def _refused(url: str, why: str) -> AddressRefused:
    return AddressRefused(f"不能向 {url[:120]} 发送通知：该地址是{why}")


def check_webhook_url(url: str, allow_private: bool) -> str:
    """The URL's form and, when its host is an address literal, the address (names: at send time)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused(f"webhook 地址必须是 http:// 或 https:// 开头的完整网址，而不是“{url[:80]}”")
    if parts.username or parts.password:
        raise AddressRefused("webhook 地址中不能包含用户名或密码 (no credentials in the URL)")
    host = parts.hostname.lower().rstrip(".")
    if host in METADATA_HOSTS:
        raise _refused(url, "云主机元数据地址 (a cloud metadata address)")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return url
    why = _refusal(ip, allow_private)
    if why:
        raise _refused(url, why)
    return url


async def check_webhook_at_send(url: str, allow_private: bool) -> None:
    """Resolve the host and refuse if any address it names is one we never send to."""
    check_webhook_url(url, allow_private)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from exc
    for info in infos:
        why = _refusal(ipaddress.ip_address(info[4][0]), allow_private)
        if why:
            raise _refused(url, why)
