"""Results in the customer's own bucket: a second moto S3 server stands for it. Real API,
capture worker (Chromium) and webhook worker processes, real Redis, the real CLI."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import redis
from botocore.config import Config
from PIL import Image

from shared.apikeys import KeyStore, NewKey
from shared.connections import create_redis
from shared.errors import ConfigurationError
from shared.settings import Settings
from shared.storage.credentials import BucketCredentials, CredentialCipher
from shared.storage.destinations import Destination
from tests.conftest import ProcessFactory
from tests.moto import run_moto
from tests.polling import wait_for_job
from tests.servers import REPO_ROOT, PageServer, child_env, python_command
from tests.webhook_receiver import WebhookReceiver

#: The customer's credentials: neither may show up anywhere but encrypted.
ACCESS_KEY_ID = "AKIACUSTOMER0SHOTLINE"
SECRET = "customer-secret-Zq9xW3vT7kL2mN8pR4sY"


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    redis_url: str
    logs: Path
    data_dir: Path

    def key(self, name: str) -> NewKey:
        async def create() -> NewKey:
            client = create_redis(self.redis_url)
            try:
                return await KeyStore(client).create(name)
            finally:
                await client.aclose()

        return asyncio.run(create())

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(python_command("-m", "shotline.cli", *args),
                                   env=child_env(self.env), cwd=REPO_ROOT, capture_output=True,
                                   text=True, timeout=60)
        if check:
            assert completed.returncode == 0, completed.stderr
        return completed


@pytest.fixture(scope="module")
def customer_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """The customer's own S3 server (a second moto) and an admin client on it."""
    with run_moto(tmp_path_factory.mktemp("customer-moto")) as endpoint:
        admin = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET,
            region_name="us-east-1",
        ).client("s3", endpoint_url=endpoint,
                 config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        admin.create_bucket(Bucket="customer-shots")
        yield endpoint, admin
        admin.close()


@pytest.fixture(scope="module")
def stack(module_processes: ProcessFactory, module_env: dict[str, str],
          tmp_path_factory: pytest.TempPathFactory) -> Stack:
    env = {"SHOTLINE_WEBHOOK_RETRY_SCHEDULE": "1", "SHOTLINE_CAPTURE_MAX_ATTEMPTS": "2",
           "SHOTLINE_LOG_LEVEL": "DEBUG"}
    base = module_processes.api(**env)
    module_processes.worker(concurrency=1, **env)
    module_processes.webhook_worker(concurrency=2, SHOTLINE_PUBLIC_BASE_URL=base, **env)
    return Stack(base=base, env={**module_env, **env}, redis_url=module_env["SHOTLINE_REDIS_URL"],
                 logs=module_processes.tmp_path, data_dir=Path(module_env["SHOTLINE_DATA_DIR"]))


def client_for(key: NewKey) -> httpx.Client:
    return httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key.key}"})


def redis_dump(url: str) -> bytes:
    """Every key and value in the Redis DB, as bytes (hashes, strings, lists, sets, zsets)."""
    client = redis.Redis.from_url(url)
    out = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"hash":
            value: Any = client.hgetall(key)
        elif kind == b"string":
            value = client.get(key)
        elif kind == b"list":
            value = client.lrange(key, 0, -1)
        elif kind == b"set":
            value = client.smembers(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1)
        else:
            value = b""
        out.append(key + b"=" + repr(value).encode())
    client.close()
    return b"\n".join(out)


def all_logs(stack: Stack) -> str:
    return "\n".join(path.read_text(errors="replace") for path in stack.logs.glob("*.log"))


def test_results_land_in_the_customers_bucket_and_no_credential_leaks(
    stack: Stack, customer_s3: tuple[str, Any], page_server: PageServer,
) -> None:
    endpoint, admin = customer_s3
    key = stack.key("customer")
    set_storage = stack.cli("keys", "set-storage", key.record.id, "--bucket", "customer-shots",
                            "--endpoint-url", endpoint, "--region", "us-east-1",
                            "--prefix", "tenant-a/", "--access-key-id", ACCESS_KEY_ID,
                            "--secret-access-key", SECRET)
    assert "s3://customer-shots/tenant-a/" in set_storage.stdout
    listed = json.loads(stack.cli("keys", "list", "--json").stdout)
    assert {"id": key.record.id, "storage": "s3://customer-shots/tenant-a/"}.items() <= next(
        row for row in listed if row["id"] == key.record.id).items()

    with client_for(key) as client, WebhookReceiver() as receiver:
        accepted = client.post(f"{stack.base}/v1/screenshots", json={
            "url": page_server.url("/index.html"), "width": 400, "height": 300,
            "format": "jpeg", "webhook_url": receiver.url()}).json()
        job = wait_for_job(client, accepted["status_url"])
        assert job["status"] == "succeeded", job
        (hook,) = receiver.wait_for(1)

        stored_key = f"tenant-a/results/{job['id']}.jpeg"
        head = admin.head_object(Bucket="customer-shots", Key=stored_key)
        assert head["ContentType"] == "image/jpeg"
        assert not list((stack.data_dir / "files").rglob(f"{job['id']}*"))
        # A presigned URL of the customer's server downloads it.
        url = job["result"]["url"]
        assert url.startswith(f"{endpoint}/customer-shots/{stored_key}?")
        assert "X-Amz-Signature=" in url
        download = httpx.get(url)
        assert download.status_code == 200
        with Image.open(io.BytesIO(download.content)) as image:
            assert image.format == "JPEG" and image.size == (400, 300)
        redirect = client.get(f"{stack.base}/v1/jobs/{job['id']}/result")
        assert redirect.status_code == 302
        assert redirect.headers["location"].startswith(f"{endpoint}/customer-shots/")
        assert json.loads(hook.body)["data"]["result"]["url"].startswith(endpoint)

        # The secret is nowhere in clear: views, webhooks, logs, Redis, the CLI's output.
        # (The access key id is in every presigned URL: SigV4 names the key it signs with.)
        view = client.get(f"{stack.base}/v1/jobs/{job['id']}").text
        listing = client.get(f"{stack.base}/v1/jobs").text
        for text in (view, listing, hook.body.decode(), set_storage.stdout, set_storage.stderr):
            assert SECRET not in text
            assert "credentials" not in text and "destination" not in text
        assert SECRET.encode() not in redis_dump(stack.redis_url)
        assert ACCESS_KEY_ID.encode() not in redis_dump(stack.redis_url)
        logs = all_logs(stack)
        assert job["id"] in logs  # the logs are the ones of this job
        assert SECRET not in logs and ACCESS_KEY_ID not in logs

        # Deleting the job deletes the object in the customer's bucket.
        assert client.delete(f"{stack.base}/v1/jobs/{job['id']}").status_code == 204
        listed_objects = admin.list_objects_v2(Bucket="customer-shots", Prefix="tenant-a/")
        assert [item["Key"] for item in listed_objects.get("Contents", [])] == []

    stack.cli("keys", "clear-storage", key.record.id)
    with client_for(key) as client:
        accepted = client.post(f"{stack.base}/v1/screenshots", json={
            "url": page_server.url("/index.html"), "width": 400, "height": 300}).json()
        job = wait_for_job(client, accepted["status_url"])
        assert job["result"]["url"].startswith(stack.base)


def test_a_bucket_that_refuses_the_upload_fails_the_job_naming_the_bucket(
    stack: Stack, customer_s3: tuple[str, Any], page_server: PageServer,
) -> None:
    endpoint, _admin = customer_s3
    key = stack.key("refused")
    # --no-check: the bucket does not exist, which the upload finds out.
    stack.cli("keys", "set-storage", key.record.id, "--bucket", "no-such-bucket",
              "--endpoint-url", endpoint, "--access-key-id", ACCESS_KEY_ID,
              "--secret-access-key", SECRET, "--no-check")
    with client_for(key) as client:
        accepted = client.post(f"{stack.base}/v1/screenshots", json={
            "url": page_server.url("/index.html"), "width": 300, "height": 200}).json()
        job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "failed", job
    assert job["attempts"] == 1  # refused for good: not retried
    assert job["error"]["code"] == "storage_error"
    assert "'no-such-bucket'" in job["error"]["message"]
    assert "NoSuchBucket" in job["error"]["message"]
    assert SECRET not in json.dumps(job) and ACCESS_KEY_ID not in json.dumps(job)
    # The CLI's own check (the default) refuses it up front.
    refused = stack.cli("keys", "set-storage", key.record.id, "--bucket", "no-such-bucket",
                        "--endpoint-url", endpoint, "--access-key-id", ACCESS_KEY_ID,
                        "--secret-access-key", SECRET, check=False)
    assert refused.returncode != 0
    assert "no-such-bucket" in refused.stderr and SECRET not in refused.stderr


def test_a_destination_at_a_refused_address_is_rejected(
    stack: Stack, page_server: PageServer,
) -> None:
    key = stack.key("metadata")
    refused = stack.cli("keys", "set-storage", key.record.id, "--bucket", "steal",
                        "--endpoint-url", "http://169.254.169.254/", "--access-key-id",
                        ACCESS_KEY_ID, "--secret-access-key", SECRET, check=False)
    assert refused.returncode != 0
    assert "URL policy" in refused.stderr and "169.254.169.254" in refused.stderr
    assert SECRET not in refused.stderr + refused.stdout
    assert "storage" not in stack.cli("keys", "list", "--json").stdout.split(
        key.record.id)[1].split("}")[0].replace('"storage": null', "")

    # Stored behind the CLI's back (or the address changed since): the worker checks again.
    async def store_directly() -> None:
        client = create_redis(stack.redis_url)
        try:
            await KeyStore(client).set_storage(key.record.id, Destination(
                bucket="steal", endpoint_url="http://10.20.30.40:9000").model_dump_json())
        finally:
            await client.aclose()

    asyncio.run(store_directly())
    with client_for(key) as client:
        accepted = client.post(f"{stack.base}/v1/screenshots", json={
            "url": page_server.url("/index.html"), "width": 300, "height": 200}).json()
        job = wait_for_job(client, accepted["status_url"])
    assert job["status"] == "failed" and job["error"]["code"] == "storage_error", job
    assert "'steal'" in job["error"]["message"] and "URL policy" in job["error"]["message"]


def test_credentials_are_encrypted_with_the_settings_key(make_settings: Any) -> None:
    settings: Settings = make_settings()
    cipher = CredentialCipher.from_settings(settings)
    token = cipher.encrypt(BucketCredentials(access_key_id=ACCESS_KEY_ID,
                                             secret_access_key=SECRET))
    assert SECRET not in token and ACCESS_KEY_ID not in token
    opened = cipher.decrypt(token)
    assert opened.secret_access_key.get_secret_value() == SECRET
    assert SECRET not in repr(opened)
    # Another SECRET_KEY cannot open it; an explicit CREDENTIALS_KEY list rotates.
    other = CredentialCipher.from_settings(make_settings(secret_key="another-secret"))
    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        other.decrypt(token)
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old_token = CredentialCipher.from_settings(make_settings(credentials_key=old)).encrypt(opened)
    rotated = CredentialCipher.from_settings(make_settings(credentials_key=f"{new},{old}"))
    assert rotated.decrypt(old_token).access_key_id.get_secret_value() == ACCESS_KEY_ID
    with pytest.raises(ConfigurationError, match="Fernet"):
        CredentialCipher.from_settings(make_settings(credentials_key="not-a-key"))


def test_destination_names_are_checked() -> None:
    assert Destination(bucket="ok-bucket", prefix="/a/b").prefix == "a/b/"
    assert Destination(bucket="ok-bucket").prefix == ""
    for bad in ({"bucket": "UPPER"}, {"bucket": "x"}, {"bucket": "ok-bucket", "prefix": "../x"},
                {"bucket": "ok-bucket", "prefix": "a b"}):
        with pytest.raises(ValueError):
            Destination(**bad)


def test_keys_set_retention_cli(stack: Stack) -> None:
    key = stack.key("retained")
    out = stack.cli("keys", "set-retention", key.record.id, "--seconds", "86400").stdout
    assert "86400 s" in out

    def row() -> dict[str, Any]:
        listed = json.loads(stack.cli("keys", "list", "--json").stdout)
        found: dict[str, Any] = next(r for r in listed if r["id"] == key.record.id)
        return found

    assert row()["retention_seconds"] == 86400
    stack.cli("keys", "set-retention", key.record.id, "--default")
    assert row()["retention_seconds"] is None
    refused = stack.cli("keys", "set-retention", key.record.id, check=False)
    assert refused.returncode != 0 and "--seconds N or --default" in refused.stderr
