"""The egress gate on its own, spoken to by a SOCKS5 client written from RFC 1928."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any, TypeVar

import pytest

from shared.errors import UrlBlocked
from shared.url_policy import IPAddress, UrlPolicy
from tests.canary import Canary
from worker.engines.egress import (
    ATYP_DOMAIN,
    ATYP_IPV4,
    ATYP_IPV6,
    REPLY_COMMAND_NOT_SUPPORTED,
    REPLY_CONNECTION_REFUSED,
    REPLY_HOST_UNREACHABLE,
    REPLY_NOT_ALLOWED,
    REPLY_SUCCEEDED,
    EgressGate,
    target_of,
)
from worker.engines.lookups import LOOKUP_TIMEOUT_S, HostLookups

T = TypeVar("T")

POLICY = UrlPolicy(allowed_networks=(ip_network("127.0.0.1/32"), ip_network("::1/128")))


class Resolver:
    """Names in a table, answered in turn (the last answer from then on)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        asked = self.calls.count(host)
        self.calls.append(host)
        sequence = self.answers[host]
        return [ip_address(sequence[min(asked, len(sequence) - 1)])]


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        async with asyncio.timeout(20):
            return await coro

    return asyncio.run(main())


async def echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def socks_connect(
    gate: EgressGate, address_type: int, address: bytes, port: int, *, command: int = 1
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """Greet the gate, send one request, return the reply code and the open streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    writer.write(bytes((5, command, 0, address_type)) + address + struct.pack("!H", port))
    head = await reader.readexactly(4)
    assert head[0] == 5
    bound_length = {ATYP_IPV4: 4, ATYP_IPV6: 16}[head[3]]
    await reader.readexactly(bound_length + 2)
    return head[1], reader, writer


def domain(name: str) -> bytes:
    return bytes((len(name),)) + name.encode()


@pytest.fixture
def canary() -> Iterator[Canary]:
    with Canary() as running:
        yield running
    assert running.hits == 0, running.report()


def test_an_allowed_connection_is_tunnelled_both_ways() -> None:
    async def scenario() -> None:
        server, port = await echo_server()
        async with server, EgressGate(POLICY) as gate:
            assert gate.proxy_server == f"socks5://127.0.0.1:{gate.port}"
            code, reader, writer = await socks_connect(
                gate, ATYP_IPV4, IPv4Address("127.0.0.1").packed, port
            )
            assert code == REPLY_SUCCEEDED
            writer.write(b"hello")
            assert await reader.readexactly(5) == b"HELLO"
            writer.close()
            assert gate.tunnels == 1
            assert gate.blocked == 0

    run(scenario())


def test_a_refused_address_gets_not_allowed_and_is_recorded(canary: Canary) -> None:
    async def scenario() -> None:
        async with EgressGate(POLICY) as gate:
            code, _, writer = await socks_connect(
                gate, ATYP_IPV4, IPv4Address(canary.host).packed, canary.port
            )
            writer.close()
            assert code == REPLY_NOT_ALLOWED
            [refusal] = gate.refusals
            assert (refusal.host, refusal.port) == (canary.host, canary.port)
            assert "loopback" in refusal.reason
            assert gate.refusal_for(f"http://{canary.address}/x") == refusal.reason
            assert gate.refusal_for(f"ws://{canary.address}/socket") == refusal.reason
            assert gate.refusal_for("http://127.0.0.1/") is None
            assert gate.tunnels == 0

    run(scenario())


@pytest.mark.parametrize(
    "spelling",
    ["127.0.0.2", "2130706434", "0x7f000002", "0177.0.0.2", "127.2", "[::ffff:127.0.0.2]",
     "::ffff:7f00:2"],
)
def test_odd_spellings_sent_as_names_are_read_as_addresses(canary: Canary, spelling: str) -> None:
    async def scenario() -> None:
        async with EgressGate(POLICY, resolver=Resolver({})) as gate:
            code, _, writer = await socks_connect(gate, ATYP_DOMAIN, domain(spelling), canary.port)
            writer.close()
            assert code == REPLY_NOT_ALLOWED
            assert gate.blocked == 1

    run(scenario())


def test_ipv6_literals_as_names_or_addresses_reach_allowed_ipv6() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
        port = int(server.sockets[0].getsockname()[1])
        async with server, EgressGate(POLICY) as gate:
            for address_type, address in (
                (ATYP_IPV6, IPv6Address("::1").packed),
                (ATYP_DOMAIN, domain("[::1]")),
                (ATYP_DOMAIN, domain("::1")),
            ):
                code, _, writer = await socks_connect(gate, address_type, address, port)
                writer.close()
                assert code == REPLY_SUCCEEDED
            assert gate.tunnels == 3

    run(scenario())


def test_a_host_is_resolved_once_per_gate_and_every_connection_pinned_to_that_answer(
    canary: Canary,
) -> None:
    """DNS rebinding: the first answer serves the whole capture, so a second answer (the
    canary's address) is never even asked for; every connection goes to the checked address.
    A new gate (the next capture) asks again, and its answer is checked again."""

    async def scenario() -> None:
        server, port = await echo_server()
        resolver = Resolver({"rebind.test": ["127.0.0.1", canary.host]})
        async with server, EgressGate(POLICY, resolver=resolver) as gate:
            for _ in range(3):
                code, reader, writer = await socks_connect(
                    gate, ATYP_DOMAIN, domain("rebind.test"), port
                )
                assert code == REPLY_SUCCEEDED
                writer.write(b"ok")
                assert await reader.readexactly(2) == b"OK"
                writer.close()
            # The canary's port, on the first (checked) address: nothing listens there.
            code, _, writer = await socks_connect(
                gate, ATYP_DOMAIN, domain("rebind.test"), canary.port
            )
            writer.close()
            assert code == REPLY_CONNECTION_REFUSED
            assert resolver.calls == ["rebind.test"]
            assert gate.lookups.lookups == 1
        async with EgressGate(POLICY, resolver=resolver) as gate:
            code, _, writer = await socks_connect(
                gate, ATYP_DOMAIN, domain("rebind.test"), canary.port
            )
            writer.close()
            assert code == REPLY_NOT_ALLOWED
            assert resolver.calls == ["rebind.test", "rebind.test"]
            assert "rebind.test resolves to 127.0.0.2" in gate.refusals[0].reason

    run(scenario())


def test_connections_arriving_together_share_one_lookup_and_a_failure_is_remembered() -> None:
    calls: list[str] = []

    async def slow_resolver(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        await asyncio.sleep(0.3)
        if host == "nowhere.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ip_address("127.0.0.1")]

    async def scenario() -> None:
        server, port = await echo_server()
        async with server, EgressGate(POLICY, resolver=slow_resolver) as gate:
            results = await asyncio.gather(*(
                socks_connect(gate, ATYP_DOMAIN, domain(host), port)
                for host in ["shared.test"] * 6 + ["nowhere.test"] * 4
            ))
            for _, _, writer in results:
                writer.close()
            codes = [code for code, _, _ in results]
            assert codes == [REPLY_SUCCEEDED] * 6 + [REPLY_HOST_UNREACHABLE] * 4
            code, _, writer = await socks_connect(gate, ATYP_DOMAIN, domain("nowhere.test"), port)
            writer.close()
            assert code == REPLY_HOST_UNREACHABLE
        assert sorted(calls) == ["nowhere.test", "shared.test"]

    run(scenario())


def test_a_lookup_that_hangs_fails_after_the_timeout_once_for_all_its_connections() -> None:
    """A black-holed DNS answer: the host is unresolvable after LOOKUP_TIMEOUT_S, and the
    connections that wait for it (and later ones) all fail then, not one timeout each."""
    calls: list[str] = []

    async def hanging_resolver(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def scenario() -> None:
        async with EgressGate(POLICY, resolver=hanging_resolver) as gate:
            started = time.monotonic()
            results = await asyncio.gather(*(
                socks_connect(gate, ATYP_DOMAIN, domain(f"dead-{index % 3}.test"), 80)
                for index in range(12)
            ))
            for _, _, writer in results:
                writer.close()
            took = time.monotonic() - started
            assert [code for code, _, _ in results] == [REPLY_HOST_UNREACHABLE] * 12
            assert LOOKUP_TIMEOUT_S - 0.1 <= took < LOOKUP_TIMEOUT_S + 1.5
            assert gate.failure_for("http://dead-0.test/") == "net::ERR_NAME_NOT_RESOLVED"
        assert sorted(calls) == ["dead-0.test", "dead-1.test", "dead-2.test"]

    run(scenario())


def test_lookups_are_bounded_in_number_at_once() -> None:
    running = 0
    most = 0

    async def counting_resolver(host: str, port: int) -> list[IPAddress]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return [ip_address("127.0.0.1")]

    async def scenario() -> None:
        lookups = HostLookups(counting_resolver, at_once=3)
        answers = await asyncio.gather(*(lookups.resolve(f"h{i}.test", 80) for i in range(10)))
        assert all(answer == (ip_address("127.0.0.1"),) for answer in answers)
        assert lookups.lookups == 10
        assert most == 3

    run(scenario())


def test_the_default_resolver_runs_getaddrinfo_in_the_lookup_pool() -> None:
    async def scenario() -> None:
        lookups = HostLookups()
        assert await lookups.resolve("localhost", 80)
        with pytest.raises(OSError):
            await lookups.resolve("nowhere.invalid", 80)
        threads = {thread.name for thread in threading.enumerate()}
        assert any(name.startswith("shotline-dns") for name in threads)

    run(scenario())


def test_unresolvable_names_and_closed_ports_are_failures_not_refusals() -> None:
    async def scenario() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = int(sock.getsockname()[1])
        async with EgressGate(POLICY, resolver=Resolver({})) as gate:
            code, _, writer = await socks_connect(gate, ATYP_DOMAIN, domain("nowhere.test"), 80)
            writer.close()
            assert code == REPLY_HOST_UNREACHABLE
            code, _, writer = await socks_connect(
                gate, ATYP_IPV4, IPv4Address("127.0.0.1").packed, closed
            )
            writer.close()
            assert code == REPLY_CONNECTION_REFUSED
            assert gate.blocked == 0
            assert gate.failure_for("http://nowhere.test/") == "net::ERR_NAME_NOT_RESOLVED"
            assert gate.failure_for(f"http://127.0.0.1:{closed}/") == "net::ERR_CONNECTION_REFUSED"

    run(scenario())


@pytest.mark.parametrize("command", [2, 3], ids=["bind", "udp-associate"])
def test_only_connect_is_served(canary: Canary, command: int) -> None:
    async def scenario() -> None:
        async with EgressGate(POLICY) as gate:
            code, _, writer = await socks_connect(
                gate, ATYP_IPV4, IPv4Address("127.0.0.1").packed, 80, command=command
            )
            writer.close()
            assert code == REPLY_COMMAND_NOT_SUPPORTED
            assert gate.tunnels == 0

    run(scenario())


@pytest.mark.parametrize(
    "greeting",
    [b"\x04\x01\x00\x50\x7f\x00\x00\x02\x00", b"GET / HTTP/1.1\r\n\r\n", b"\x05\x01\x02"],
    ids=["socks4", "http", "password-only"],
)
def test_other_protocols_get_nowhere(canary: Canary, greeting: bytes) -> None:
    async def scenario() -> None:
        async with EgressGate(POLICY) as gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
            writer.write(greeting)
            answer = await reader.read(100)
            writer.close()
            assert answer in (b"", b"\x05\xff")
            assert gate.tunnels == 0

    run(scenario())


def test_the_gate_without_a_policy_refuses_everything() -> None:
    async def scenario() -> None:
        server, port = await echo_server()
        async with server, EgressGate(None) as gate:
            code, _, writer = await socks_connect(
                gate, ATYP_IPV4, IPv4Address("127.0.0.1").packed, port
            )
            writer.close()
            assert code == REPLY_NOT_ALLOWED
            # Counted, not kept: this gate lives as long as the browser.
            assert gate.blocked == 1 and gate.refusals == []

    run(scenario())


def test_closing_the_gate_cuts_open_tunnels_and_stops_listening() -> None:
    async def scenario() -> None:
        server, port = await echo_server()
        async with server:
            gate = EgressGate(POLICY)
            await gate.start()
            _, reader, writer = await socks_connect(
                gate, ATYP_IPV4, IPv4Address("127.0.0.1").packed, port
            )
            await gate.aclose()
            assert await reader.read() == b""  # the tunnel was cut
            writer.close()
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", gate.port)
            await gate.aclose()  # idempotent

    run(scenario())


def test_the_gate_names_its_proxy_only_once_started() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = EgressGate(POLICY).proxy_server


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://Example.COM/a", ("example.com", 80)),
        ("https://example.com./", ("example.com", 443)),
        ("ws://127.0.0.2:9/", ("127.0.0.2", 9)),
        ("wss://[::FFFF:127.0.0.2]/", ("::ffff:7f00:2", 443)),
        ("data:text/html,x", None),
        ("about:blank", None),
        ("http://example.com:99999/", None),
    ],
)
def test_target_of(url: str, target: Any) -> None:
    assert target_of(url) == target


def test_the_policy_check_the_gate_uses() -> None:
    addresses = run(POLICY.acheck_host("LOCALHOST.", 8000))
    assert addresses == (IPv4Address("127.0.0.1"), IPv6Address("::1"))
    with pytest.raises(UrlBlocked, match=r"127\.0\.0\.2 is a loopback address"):
        run(POLICY.acheck_host("0x7f000002", 80))
    with pytest.raises(UrlBlocked, match="invalid host name"):
        run(POLICY.acheck_host("a b", 80))


def test_a_failure_inside_the_gate_cuts_that_connection_only() -> None:
    async def broken_resolver(host: str, port: int) -> list[IPAddress]:
        raise RuntimeError("resolver bug")

    async def scenario() -> None:
        server, port = await echo_server()
        async with server, EgressGate(POLICY, resolver=broken_resolver) as gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", gate.port)
            writer.write(b"\x05\x01\x00\x05\x01\x00\x03" + domain("example.test") + b"\x00\x50")
            assert await reader.read() == b"\x05\x00"  # greeted, then cut without a reply
            writer.close()
            code, _, writer = await socks_connect(
                gate, ATYP_IPV4, IPv4Address("127.0.0.1").packed, port
            )
            writer.close()
            assert code == REPLY_SUCCEEDED
            assert gate.tunnels == 1

    run(scenario())
