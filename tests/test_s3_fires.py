"""The S3 checks the main moto estate does not trip, each made to fire by a real bucket.

``s3-kms-for-phi``: a bucket holding PHI under S3-managed keys (SSE-S3) fails, whether its tags
say it holds PHI or its sampled objects show it; SSE-KMS, or no PHI, does not.
``s3-object-ownership``: ownership that still honours ACLs. ``s3-access-logging``: no server
access logging. The buckets come from :func:`s3peers.build_fires_estate` on a moto server of
their own; the CLI scans them as a user would.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT, by_asset, run_cli

sys.path.insert(0, str(ROOT / "fixtures"))
import s3peers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    server = s3peers.start_moto(tmp_path_factory.mktemp("s3fires"))
    try:
        buckets = s3peers.build_fires_estate(server)
        result = run_cli("scan", "s3", *sorted(buckets), "--endpoint-url", server.endpoint_url,
                         "--provider", "aws", "--format", "json", "--fail-on", "none",
                         env=server.env())
    finally:
        server.stop()
    assert "Traceback" not in result.stderr, result.stderr
    yield result.json()


def of(doc: dict[str, Any], bucket: str, check_id: str) -> list[dict[str, Any]]:
    return [f for f in by_asset(doc).get(f"s3://{bucket}", []) if f["check_id"] == check_id]


def coverage(doc: dict[str, Any], check_id: str) -> tuple[int, int, int]:
    row = {c["check_id"]: c for c in doc["coverage"]}[check_id]
    return row["evaluated"], row["failed"], row["errors"]


@pytest.mark.parametrize("bucket, why", [
    ("phi-sse-s3", "tagged phi=true"),
    ("phi-found-sse-s3", "PHI found in its sampled objects"),
])
def test_phi_under_s3_managed_keys_fails(doc: dict[str, Any], bucket: str, why: str) -> None:
    (finding,) = of(doc, bucket, "s3-kms-for-phi")
    assert finding["status"] == "fail" and finding["severity"] == "low"
    assert f"holds PHI ({why})" in finding["message"] and "SSE-S3" in finding["message"]
    assert finding["locations"][0]["algorithm"] == "AES256"
    assert "164.312(a)(2)(iv)" in finding["hipaa"]


def test_kms_or_no_phi_passes(doc: dict[str, Any]) -> None:
    assert of(doc, "phi-sse-kms", "s3-kms-for-phi") == []
    assert of(doc, "plain-sse-s3", "s3-kms-for-phi") == []
    # the three buckets holding PHI were judged, two failed; without PHI it does not apply
    assert coverage(doc, "s3-kms-for-phi") == (3, 2, 0)


def test_ownership_that_honours_acls(doc: dict[str, Any]) -> None:
    (finding,) = of(doc, "plain-sse-s3", "s3-object-ownership")
    assert finding["severity"] == "low" and "BucketOwnerPreferred" in finding["message"]
    assert finding["locations"][0]["ownership"] == "BucketOwnerPreferred"
    assert coverage(doc, "s3-object-ownership") == (4, 1, 0)


def test_no_access_logging(doc: dict[str, Any]) -> None:
    # PHI or not, nothing is logged: medium where PHI is held, low elsewhere
    severity = {b: [f["severity"] for f in of(doc, b, "s3-access-logging")]
                for b in ("phi-sse-s3", "phi-sse-kms", "plain-sse-s3")}
    assert severity == {"phi-sse-s3": ["medium"], "phi-sse-kms": ["medium"],
                        "plain-sse-s3": ["low"]}
    assert coverage(doc, "s3-access-logging") == (4, 4, 0)
