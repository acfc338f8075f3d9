"""Connect to S3 read-only: credentials, clients, retries, and what each answer means.

One :class:`Connection` per scan: boto3's credential chain (or a named profile), an optional
audit role assumed through STS, adaptive retries, path-style addressing for S3-compatible
endpoints, and an identifiable User-Agent. Every client it makes refuses, before anything is
sent, any operation that is not a List, Get or Head call (STS AssumeRole and GetCallerIdentity
excepted): the scanner cannot write, whatever a bug asks of it.

:func:`call` turns every answer into an :class:`Answer`: data, "not configured" (404), "not
supported by this store" (501, 405, NotImplemented, an unparsable reply), "access denied" (403),
or a failure (throttled past the retries, timeouts, connection errors). Errors are data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from hipaa_audit import __version__
from hipaa_audit.errors import HipaaAuditError, ScannerSetupError
from hipaa_audit.network.targets import is_ip

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3control import S3ControlClient
    from mypy_boto3_sts import STSClient

Provider = Literal["auto", "aws", "compatible"]
State = Literal["ok", "absent", "unsupported", "denied", "failed"]
#: Operations allowed besides List*, Get* and Head*: assuming the audit role, asking who we are.
READ_ONLY_EXTRA = frozenset({"AssumeRole", "GetCallerIdentity"})
THROTTLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                            "TooManyRequestsException", "RequestThrottled", "ServiceUnavailable"})
UNSUPPORTED_CODES = frozenset({"NotImplemented", "MethodNotAllowed", "UnsupportedOperation"})
#: 404 codes that name the bucket itself, not a missing configuration.
MISSING_BUCKET = frozenset({"NoSuchBucket"})


class WriteRefused(HipaaAuditError, RuntimeError):
    """A client was asked for an operation that could change the store."""


class S3SetupError(ScannerSetupError):
    """The credentials, the role or the endpoint cannot be used (a clear message for the CLI)."""


def is_read_only(operation: str) -> bool:
    """True when ``operation`` (a botocore operation name) only lists, gets or heads."""
    return operation.startswith(("List", "Get", "Head")) or operation in READ_ONLY_EXTRA


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one API call, classified."""

    state: State
    data: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    http: int = 0

    @property
    def ok(self) -> bool:
        """True when the call returned data."""
        return self.state == "ok"

    def reason(self, what: str) -> str:
        """Say why ``what`` (e.g. "the bucket policy") could not be verified."""
        code = "" if self.code == str(self.http) else self.code
        status = f"{self.http} {code}".strip() if self.http else code
        if self.state == "unsupported":
            return (f"{what}: not supported by this store ({status}); it cannot be verified here "
                    "and is not counted as compliant")
        if self.state == "denied":
            return (f"{what}: access denied ({status}); the audit identity lacks the read "
                    "permission, or a bucket policy denies this scanner (a TLS-only policy denies "
                    "plain http:// endpoints)")
        if self.code in THROTTLE_CODES or self.http == 503:
            return f"{what}: the store kept throttling ({status}) after every retry"
        return f"{what}: could not be read ({status or 'no answer'})"


def classify(exc: Exception) -> Answer:
    """Classify an exception raised by a botocore call."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        http = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if http in (501, 405) or code in UNSUPPORTED_CODES:
            return Answer("unsupported", code=code, http=http)
        if http == 403 or code in ("AccessDenied", "AllAccessDisabled", "AccessDeniedException"):
            return Answer("denied", code=code or "AccessDenied", http=http)
        if code not in MISSING_BUCKET and (
                http == 404 or code.startswith("NoSuch") or code.endswith(("NotFound",
                                                                           "NotFoundError"))):
            return Answer("absent", code=code, http=http)
        return Answer("failed", code=code or "error", http=http)
    if isinstance(exc, ResponseParserError):
        return Answer("unsupported", code="unparsable reply")
    return Answer("failed", code=type(exc).__name__)


def call(client: Any, operation: str, **params: Any) -> Answer:
    """Call ``client.operation(**params)`` and classify the outcome (never raises for the API)."""
    try:
        data = getattr(client, operation)(**params)
    except (ClientError, BotoCoreError) as exc:
        return classify(exc)
    data.pop("ResponseMetadata", None)
    return Answer("ok", data)


def is_aws_endpoint(endpoint_url: str | None) -> bool:
    """True for AWS itself: no endpoint given, or an ``*.amazonaws.com`` host."""
    if endpoint_url is None:
        return True
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


@dataclass(frozen=True, slots=True)
class Access:
    """How to reach the store: the ``scan s3`` access options."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    role_arn: str | None = None
    #: ``aws``: AWS semantics (s3control, inventory); ``compatible``: an on-prem store.
    provider: Provider = "auto"
    ca_bundle: str | None = None
    max_attempts: int = 8
    timeout: float = 20.0
    pool: int = 32

    @property
    def aws(self) -> bool:
        """True when AWS-only APIs (s3control, inventory) may be called."""
        if self.provider == "auto":
            return is_aws_endpoint(self.endpoint_url)
        return self.provider == "aws"

    def describe(self) -> dict[str, object]:
        """The options as recorded in the run (no secrets)."""
        return {"endpoint_url": self.endpoint_url or "aws", "profile": self.profile,
                "region": self.region, "role_arn": self.role_arn,
                "provider": "aws" if self.aws else "compatible"}


Observer = Callable[[str, str], None]


def _account_prefix_stripper(request: Any, **_: Any) -> None:
    """s3control puts the account id in the host; a custom endpoint has no such host."""
    parts = urlsplit(request.url)
    label, _, rest = parts.netloc.partition(".")
    if label.isdigit() and len(label) == 12 and rest:
        request.url = urlunsplit(parts._replace(netloc=rest))


def _loopback_or_ip(endpoint_url: str) -> bool:
    host = urlsplit(endpoint_url).hostname or ""
    return host == "localhost" or is_ip(host)


class Connection:
    """Clients for one scan, all read-only, made once and shared by the worker threads."""

    def __init__(self, access: Access, observer: Observer | None = None) -> None:
        """Open a session (assuming ``access.role_arn`` when given); raise S3SetupError."""
        self.access = access
        self.observer = observer
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str | None], Any] = {}
        try:
            session = boto3.Session(profile_name=access.profile, region_name=access.region)
        except BotoCoreError as exc:
            raise S3SetupError(f"cannot use the AWS profile: {exc}") from None
        self.session = session
        if session.get_credentials() is None:
            raise S3SetupError("no AWS credentials found (environment, profile, SSO or instance "
                               "role); give --profile or set AWS_ACCESS_KEY_ID")
        self.region = access.region or session.region_name or "us-east-1"
        if access.role_arn:
            self.session = self._assume(access.role_arn)
        self.account_id = self._account()

    def _config(self, attempts: int | None = None) -> Config:
        extra: dict[str, Any] = {}
        if self.access.endpoint_url:
            extra["s3"] = {"addressing_style": "path"}
        return Config(
            retries={"mode": "adaptive", "max_attempts": attempts or self.access.max_attempts},
            connect_timeout=self.access.timeout, read_timeout=self.access.timeout,
            user_agent_extra=f"hipaa-audit/{__version__}",
            max_pool_connections=self.access.pool, **extra,
        )

    def _guard(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        if not is_read_only(model.name):
            raise WriteRefused(f"refused {service}:{model.name}: hipaa-audit only reads")
        if self.observer is not None:
            self.observer(service, model.name)

    @overload
    def client(self, service: Literal["s3"] = "s3", region: str | None = None) -> S3Client: ...

    @overload
    def client(self, service: Literal["s3control"], region: str | None = None
               ) -> S3ControlClient: ...

    @overload
    def client(self, service: Literal["iam"], region: str | None = None) -> IAMClient: ...

    @overload
    def client(self, service: Literal["sts"], region: str | None = None) -> STSClient: ...

    def client(self, service: str = "s3", region: str | None = None) -> Any:
        """Return the (cached) read-only client of ``service`` in ``region``."""
        key = (service, region)
        with self._lock:
            made = self._clients.get(key)
            if made is None:
                made = self._make(service, region)
                self._clients[key] = made
            return made

    def _make(self, service: str, region: str | None, attempts: int | None = None) -> Any:
        endpoint = self.access.endpoint_url
        session: Any = self.session  # the stubs type each service name separately
        client = session.client(
            service, region_name=region or self.region, endpoint_url=endpoint,
            verify=self.access.ca_bundle if self.access.ca_bundle else None,
            config=self._config(attempts))
        client.meta.events.register("before-call", self._guard)
        if service == "s3control" and endpoint and _loopback_or_ip(endpoint):
            client.meta.events.register("before-sign.s3-control", _account_prefix_stripper)
        return client

    def _assume(self, role_arn: str) -> boto3.Session:
        sts = self.client("sts")
        answer = call(sts, "assume_role", RoleArn=role_arn, RoleSessionName="hipaa-audit",
                      DurationSeconds=3600)
        if not answer.ok:
            raise S3SetupError(answer.reason(f"cannot assume the role {role_arn}"))
        creds = answer.data["Credentials"]
        with self._lock:
            self._clients.clear()
        return boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                             aws_secret_access_key=creds["SecretAccessKey"],
                             aws_session_token=creds["SessionToken"], region_name=self.region)

    def _account(self) -> str | None:
        # asked once, with few retries: an endpoint that does not answer fails fast
        sts = self._make("sts", None, attempts=2)
        answer = call(sts, "get_caller_identity")
        if answer.state == "failed" and answer.code in ("EndpointConnectionError",
                                                          "ConnectTimeoutError", "ReadTimeoutError",
                                                          "ConnectionClosedError"):
            raise S3SetupError(f"cannot reach {self.access.endpoint_url or 'AWS'} "
                               f"({answer.code})")
        return str(answer.data["Account"]) if answer.ok else None


__all__ = ["Access", "Answer", "Connection", "S3SetupError",
           "WriteRefused", "call", "classify", "is_aws_endpoint", "is_read_only"]
