"""Customers' buckets connect only where the URL policy allows, DNS rebinding included.

A moto S3 server (recording every request it gets) stands for the customer's S3, reached
through host names whose resolution the test controls: ``socket.getaddrinfo`` answers from
a script for ``*.test`` names, for the URL policy's check and for urllib3 alike, so an
unpinned client would follow the rebinding to the server. Real Redis holds the keys.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import SSLError

from shared.apikeys import KeyStore
from shared.connections import create_redis
from shared.errors import StorageError, UrlBlocked
from shared.settings import Settings
from shared.storage.credentials import BucketCredentials, CredentialCipher
from shared.storage.destinations import (
    Destination,
    DestinationRefused,
    make_storage_router,
    placement_for,
)
from shared.storage.pinned import PinnedSession
from shared.url_policy import UrlPolicy
from tests.moto import run_moto
from tests.webhook_receiver import WebhookReceiver

BUCKET = "customer-shots"
ACCESS_KEY_ID = "AKIAPINNED0SHOTLINE"
SECRET = "pinned-secret-Hq2vX8wL4kT9"
_real_getaddrinfo = socket.getaddrinfo


class ScriptedDns:
    """``socket.getaddrinfo`` for the scripted names (one answer per lookup, the last one
    repeated), the real one for everything else; records the scripted lookups."""

    def __init__(self) -> None:
        self.script: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def answer(self, name: str, *answers: list[str]) -> None:
        self.script[name] = list(answers)

    def count(self, name: str) -> int:
        return self.lookups.count(name)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode("ascii") if isinstance(host, bytes) else host
        answers = self.script.get(name)
        if answers is None:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        self.lookups.append(name)
        addresses = answers[min(self.count(name), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (address, int(port))) for address in addresses]


@dataclass
class CustomerS3:
    endpoint: str
    port: int
    recording: Path
    admin: Any

    def hosts_seen(self) -> list[str]:
        """The ``Host`` header of every request the server received, in order."""
        if not self.recording.exists():
            return []
        entries = [json.loads(line) for line in self.recording.read_text().splitlines() if line]
        return [entry["headers"].get("Host", "") for entry in entries]


@pytest.fixture(scope="module")
def customer_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CustomerS3]:
    logs = tmp_path_factory.mktemp("pinned-moto")
    recording = logs / "requests.jsonl"
    # Path-style requests under made-up host names: no bucket name in the host.
    env = {"MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording),
           "S3_IGNORE_SUBDOMAIN_BUCKETNAME": "true"}
    with run_moto(logs, env=env) as endpoint:
        admin = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET,
            region_name="us-east-1",
        ).client("s3", endpoint_url=endpoint,
                 config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        admin.create_bucket(Bucket=BUCKET)
        yield CustomerS3(endpoint, int(endpoint.rsplit(":", 1)[1]), recording, admin)
        admin.close()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> ScriptedDns:
    scripted = ScriptedDns()
    monkeypatch.setattr(socket, "getaddrinfo", scripted)
    return scripted


def _destination(settings: Settings, host: str, port: int) -> Destination:
    token = CredentialCipher.from_settings(settings).encrypt(BucketCredentials(
        access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET))
    return Destination(bucket=BUCKET, endpoint_url=f"http://{host}:{port}", region="us-east-1",
                       prefix="tenant/", credentials=token)


async def _key_with(settings: Settings, destination: Destination) -> str:
    client = create_redis(settings.redis_url)
    try:
        store = KeyStore(client)
        key = await store.create("pinned")
        await store.set_storage(key.record.id, destination.model_dump_json())
        return key.record.id
    finally:
        await client.aclose()


async def _put_through_placement(settings: Settings, key_id: str, body: bytes) -> None:
    """What the capture pipeline does: placement (endpoint checked), then the upload."""
    router = make_storage_router(settings)
    client = create_redis(settings.redis_url)
    try:
        placement = await placement_for(router, key_id, keys=KeyStore(client),
                                        policy=UrlPolicy.from_settings(settings))
        assert placement.destination is not None
        await placement.put(f"{placement.prefix}results/job.png", body, content_type="image/png")
    finally:
        await client.aclose()
        await router.aclose()


def test_rebinding_to_loopback_is_refused_where_the_connection_is_made(
    make_settings: Callable[..., Settings], customer_s3: CustomerS3, dns: ScriptedDns,
) -> None:
    """Public when the endpoint is checked, the server's own loopback address when boto3
    connects: refused, permanently, naming the bucket, and nothing reaches the server."""
    settings = make_settings(allowed_networks="", allowed_ports=f"80,443,{customer_s3.port}")
    host = "bucket.rebind.test"
    dns.answer(host, ["93.184.215.14"], ["127.0.0.1"])
    destination = _destination(settings, host, customer_s3.port)
    key_id = asyncio.run(_key_with(settings, destination))

    with pytest.raises(DestinationRefused) as refused:
        asyncio.run(_put_through_placement(settings, key_id, b"\x89PNG not really"))
    assert refused.value.code == "storage_error" and not refused.value.retryable
    message = refused.value.message
    assert f"bucket '{BUCKET}' at http://{host}:{customer_s3.port}" in message
    assert "URL policy" in message and "127.0.0.1" in message and "loopback" in message
    assert SECRET not in message and ACCESS_KEY_ID not in message
    # One lookup for the check, one for the one connection attempt (a refusal is not retried).
    assert dns.count(host) == 2
    assert not any(seen.startswith(host) for seen in customer_s3.hosts_seen())
    assert "Contents" not in customer_s3.admin.list_objects_v2(Bucket=BUCKET, Prefix="tenant/")


def test_every_operation_on_a_rebound_bucket_is_refused(
    make_settings: Callable[..., Settings], customer_s3: CustomerS3, dns: ScriptedDns,
) -> None:
    """Reads, listings, deletions and the bucket check connect through the same policy."""
    settings = make_settings(allowed_networks="", allowed_ports=f"80,443,{customer_s3.port}")
    host = "metadata.rebind.test"
    dns.answer(host, ["169.254.169.254"])
    router = make_storage_router(settings)
    storage = router.for_destination(_destination(settings, host, customer_s3.port))

    async def attempts() -> list[StorageError]:
        failures: list[StorageError] = []
        try:
            for attempt in (lambda: storage.list_keys("tenant/"),
                            lambda: storage.delete("tenant/results/job.png"),
                            lambda: _read(storage, "tenant/results/job.png"),
                            storage.check):
                with pytest.raises(StorageError) as failed:
                    await attempt()
                failures.append(failed.value)
        finally:
            await router.aclose()
        return failures

    for failure in asyncio.run(attempts()):
        assert isinstance(failure.__cause__, UrlBlocked)
        assert "169.254.169.254" in failure.message and "link-local" in failure.message
    assert dns.count(host) == 4  # one connection attempt each, none retried


def test_an_allowed_address_uploads_and_reads_back_under_its_host_name(
    make_settings: Callable[..., Settings], customer_s3: CustomerS3, dns: ScriptedDns,
) -> None:
    """The control: the same server, its address allowed by ALLOWED_NETWORKS."""
    settings = make_settings(allowed_networks="127.0.0.0/8")
    host = "bucket.allowed.test"
    dns.answer(host, ["127.0.0.1"])
    destination = _destination(settings, host, customer_s3.port)
    key_id = asyncio.run(_key_with(settings, destination))
    body = b"\x89PNG pinned upload"

    asyncio.run(_put_through_placement(settings, key_id, body))
    stored = customer_s3.admin.get_object(Bucket=BUCKET, Key="tenant/results/job.png")
    assert stored["Body"].read() == body and stored["ContentType"] == "image/png"

    async def read_back() -> tuple[bytes, list[str]]:
        router = make_storage_router(settings)
        try:
            storage = router.for_destination(destination)
            data = await _read(storage, "tenant/results/job.png")
            keys = await storage.list_keys("tenant/")
            await storage.delete("tenant/results/job.png")
            return data, keys
        finally:
            await router.aclose()

    data, keys = asyncio.run(read_back())
    assert data == body and keys == ["tenant/results/job.png"]
    assert "Contents" not in customer_s3.admin.list_objects_v2(Bucket=BUCKET, Prefix="tenant/")
    # The connections went to the checked address, the requests kept the name (SigV4 signs it).
    assert dns.count(host) >= 2
    assert f"{host}:{customer_s3.port}" in customer_s3.hosts_seen()


def test_the_default_storage_is_operator_configuration_and_not_pinned(
    make_settings: Callable[..., Settings], customer_s3: CustomerS3,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SHOTLINE_S3_ENDPOINT_URL on loopback works with no ALLOWED_NETWORKS at all."""
    settings = make_settings(allowed_networks="", storage="s3", s3_bucket=BUCKET,
                             s3_endpoint_url=customer_s3.endpoint, s3_region="us-east-1")

    async def round_trip() -> bytes:
        router = make_storage_router(settings)
        try:
            await router.put("default/object.txt", b"operator", content_type="text/plain")
            data = await _read(router, "default/object.txt")
            await router.delete("default/object.txt")
            return data
        finally:
            await router.aclose()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert asyncio.run(round_trip()) == b"operator"


def test_tls_keeps_the_host_name_for_sni_and_the_certificate(
    dns: ScriptedDns, tmp_path: Path,
) -> None:
    """HTTPS connections are pinned too, and still verify the certificate of the name."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("bucket.tls.test").configure_cert(server_context)
    seen_sni: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with WebhookReceiver(ssl_context=server_context) as receiver:
        dns.answer("bucket.tls.test", ["127.0.0.1"])
        dns.answer("other.tls.test", ["127.0.0.1"])
        dns.answer("rebind.tls.test", ["127.0.0.1"])
        allowed = UrlPolicy(allowed_networks=(ip_network("127.0.0.0/8"),),
                            allowed_ports=frozenset({receiver.port}))
        session = PinnedSession(allowed, connect_timeout=5, read_timeout=10,
                                max_pool_connections=2, verify=str(ca_file))
        try:
            url = f"https://bucket.tls.test:{receiver.port}/hook"
            response = session.send(AWSRequest(method="POST", url=url, data=b"{}").prepare())
            assert response.status_code == 200
            assert seen_sni == ["bucket.tls.test"]
            assert receiver.received[0].headers["host"] == f"bucket.tls.test:{receiver.port}"
            # Same address, another name: the certificate does not match.
            other = f"https://other.tls.test:{receiver.port}/hook"
            with pytest.raises(SSLError):
                session.send(AWSRequest(method="POST", url=other, data=b"{}").prepare())
        finally:
            session.close()
        public_only = PinnedSession(UrlPolicy(allowed_ports=frozenset({receiver.port})),
                                    connect_timeout=5, read_timeout=10,
                                    max_pool_connections=2, verify=str(ca_file))
        try:
            rebound = f"https://rebind.tls.test:{receiver.port}/hook"
            with pytest.raises(UrlBlocked, match="loopback"):
                public_only.send(AWSRequest(method="POST", url=rebound, data=b"{}").prepare())
        finally:
            public_only.close()
        assert len(receiver.received) == 1


async def _read(storage: Any, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.stream(key)])



def test_ip_literal_endpoints_are_checked_without_dns(dns: ScriptedDns) -> None:
    with WebhookReceiver() as receiver:
        public_only = PinnedSession(UrlPolicy(allowed_ports=frozenset({receiver.port})),
                                    connect_timeout=5, read_timeout=10, max_pool_connections=2)
        try:
            for url, reason in ((receiver.url(), "loopback"),
                                (f"http://[::1]:{receiver.port}/hook", "loopback"),
                                (f"http://0x7f.1:{receiver.port}/hook", "loopback"),
                                ("http://169.254.169.254/latest/meta-data/", "link-local")):
                with pytest.raises(UrlBlocked, match=reason):
                    public_only.send(AWSRequest(method="GET", url=url).prepare())
        finally:
            public_only.close()
        assert receiver.received == [] and dns.lookups == []
