"""Build the options of a log analysis from the command line or a ``[[logs]]`` section.

Everything is read and checked before any log is parsed: the column mapping, the Sigma rules (a
bad rule stops the command with its file and reason), the roster, VIP and co-worker lists and the
patient list (turned into keyed fingerprints at once) and the detector settings.
"""

from __future__ import annotations

import csv
import datetime
import os
import tomllib
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hipaa_audit.config import parse_toml
from hipaa_audit.logs.detect import Settings
from hipaa_audit.logs.run import LogOptions, LogSetupError
from hipaa_audit.redaction import Masker

FORMATS = ("auto", "atna", "fhir", "cloudtrail", "csv", "jsonl")


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LogSetupError(f"cannot read the {what} {path}: {exc.strerror}") from None


def patient_key(value: str) -> str:
    """A patient id as the parsers fingerprint it (an HL7 CX ``^^^`` suffix dropped)."""
    return value.split("^", 1)[0].strip()


def roster_families(path: Path, masker: Masker) -> tuple[dict[str, str], dict[str, str]]:
    """``user -> fingerprint of the upper-cased family name`` and ``user -> role`` of a roster.

    The roster is a CSV with a header naming ``user`` (or ``id``, as the permission scan's
    roster does) and ``family`` (or ``name``, a full name whose last word is the family name).
    """
    rows = list(csv.DictReader(_read(path, "roster").splitlines()))
    header = set(rows[0]) if rows else set()
    user = "user" if "user" in header else "id"
    family = "family" if "family" in header else "name"
    if not rows or not {user, family} <= header:
        raise LogSetupError(f"{path}: the roster needs a header with user (or id) and family "
                            "(or name) columns")

    def family_of(row: dict[str, str]) -> str:
        value = (row.get(family) or "").strip()
        return value.split()[-1] if family == "name" and value else value

    families = {r[user].strip(): masker.fingerprint(family_of(r).upper())
                for r in rows if r.get(user) and family_of(r)}
    roles = {r[user].strip(): r["role"].strip() for r in rows if r.get(user) and r.get("role")}
    return families, roles


def roster_patients(path: Path, masker: Masker) -> dict[str, str]:
    """``user -> fingerprint of the user's own patient id``, when the roster has the column.

    The column is ``patient_id`` (or ``mrn``): the member of staff's own record as a patient,
    for the self-access check. A roster without it gives nothing.
    """
    rows = list(csv.DictReader(_read(path, "roster").splitlines()))
    header = set(rows[0]) if rows else set()
    user = "user" if "user" in header else "id"
    column = next((c for c in ("patient_id", "mrn") if c in header), None)
    if column is None:
        return {}
    return {r[user].strip(): masker.fingerprint(patient_key(r[column]))
            for r in rows if r.get(user) and (r.get(column) or "").strip()}


def normalised_address(value: str) -> str:
    """An address compared across sources: upper case, letters and digits, single spaces."""
    return " ".join("".join(c if c.isalnum() else " " for c in value.upper()).split())


def normalised_department(value: str) -> str:
    """A department name compared across sources: case and spacing aside."""
    return " ".join(value.upper().split())


def _split(value: str | None) -> list[str]:
    """The values of a cell listing several, separated by ``;`` or ``|``."""
    return [v.strip() for v in (value or "").replace("|", ";").split(";") if v.strip()]


def roster_relations(path: Path, masker: Masker) -> dict[str, Any]:
    """What the roster says of each user for the relationship checks, when it has the columns.

    ``emergency_contact_id`` (or ``emergency_contact_mrn``): the patient ids of the user's
    emergency contacts (``;``-separated) -> ``user_relatives``, keyed fingerprints; ``address``:
    the user's home address -> ``user_address``, the keyed fingerprint of the normalised address
    (:func:`normalised_address`); ``department`` -> ``user_department``.
    """
    rows = list(csv.DictReader(_read(path, "roster").splitlines()))
    header = set(rows[0]) if rows else set()
    user = "user" if "user" in header else "id"
    out: dict[str, Any] = {}
    contact = next((c for c in ("emergency_contact_id", "emergency_contact_mrn")
                    if c in header), None)
    if contact is not None:
        out["user_relatives"] = {
            r[user].strip(): frozenset(masker.fingerprint(patient_key(v))
                                       for v in _split(r[contact]))
            for r in rows if r.get(user) and _split(r.get(contact))}
    if "address" in header:
        out["user_address"] = {
            r[user].strip(): masker.fingerprint(normalised_address(r["address"]))
            for r in rows if r.get(user) and normalised_address(r.get("address") or "")}
    if "department" in header:
        out["user_department"] = {
            r[user].strip(): normalised_department(r["department"])
            for r in rows if r.get(user) and (r.get("department") or "").strip()}
    return out


_DECEASED_YES = frozenset({"y", "yes", "true", "1", "deceased"})


def patient_facts(path: Path, masker: Masker) -> dict[str, Any]:
    """A patient list (CSV) for the relationship checks, fingerprinted as it is read.

    Columns: ``patient_id`` (or ``mrn``), and any of ``address`` (-> ``patient_address``, the
    keyed fingerprint of the normalised address), ``deceased`` (a date of death, or yes/true:
    -> ``patient_deceased``) and ``department`` (the departments treating the patient,
    ``;``-separated -> ``patient_departments``). Raises :class:`LogSetupError` for a file
    without a patient id column or with a date of death that is not a date.
    """
    rows = list(csv.DictReader(_read(path, "patient list").splitlines()))
    header = set(rows[0]) if rows else set()
    column = next((c for c in ("patient_id", "mrn") if c in header), None)
    if column is None:
        raise LogSetupError(f"{path}: the patient list needs a header with a patient_id (or "
                            "mrn) column")
    address: dict[str, str] = {}
    deceased: dict[str, str] = {}
    departments: dict[str, frozenset[str]] = {}
    for number, row in enumerate(rows, 2):
        pid = patient_key(row.get(column) or "")
        if not pid:
            continue
        key = masker.fingerprint(pid)
        where = normalised_address(row.get("address") or "")
        if where:
            address[key] = masker.fingerprint(where)
        died = (row.get("deceased") or "").strip()
        if died.lower() in _DECEASED_YES:
            deceased[key] = ""
        elif died and died.lower() not in ("n", "no", "false", "0"):
            try:
                deceased[key] = datetime.date.fromisoformat(died[:10]).isoformat()
            except ValueError:
                raise LogSetupError(f"{path}: line {number}: deceased is neither a date "
                                    "(YYYY-MM-DD) nor yes/no") from None
        treating = frozenset(normalised_department(d) for d in _split(row.get("department")))
        if treating:
            departments[key] = treating
    return {"patient_address": address, "patient_deceased": deceased,
            "patient_departments": departments}


def patient_list(path: Path, masker: Masker) -> frozenset[str]:
    """Fingerprints of a file of patient ids (one per line; ``#`` starts a comment)."""
    ids = [line.split("#", 1)[0].strip() for line in _read(path, "patient list").splitlines()]
    return frozenset(masker.fingerprint(patient_key(i)) for i in ids if i)


def mapping_from(data: dict[str, Any] | None, source: str) -> Any:
    """The column mapping of CSV/JSONL logs (``None`` for the default names)."""
    if not data:
        return None
    from hipaa_audit.logs.parsers import ColumnMapping

    try:
        return ColumnMapping.from_config(data)
    except (ValueError, TypeError) as exc:
        raise LogSetupError(f"{source}: column mapping: {exc}") from None


def builtin_rules() -> Path:
    """The folder of the Sigma rules shipped with the tool (``--sigma builtin``)."""
    from importlib import resources

    return Path(str(resources.files("hipaa_audit.checks") / "sigma"))


def log_options(paths: Sequence[str], masker: Masker, *, fmt: str = "auto",
                mapping: dict[str, Any] | None = None, mapping_source: str = "mapping",
                sigma: Sequence[Path] = (), timezone: str | None = None,
                detectors: dict[str, Any] | None = None, roster: Path | None = None,
                vip: Path | None = None, coworkers: Path | None = None,
                patients: Path | None = None, chain_key_env: str | None = None,
                anchors: Sequence[Path] = (),
                cloudtrail_keys: Sequence[Path] = (), cache: bool = True,
                scheduler: str | None = None) -> LogOptions:
    """Check and assemble the options; raise :class:`LogSetupError` with a clear message.

    ``scheduler``: the address of a Dask scheduler that parses the files (see
    :mod:`hipaa_audit.logs.run`); whether it can be reached is found when the analysis starts.
    """
    if fmt not in FORMATS:
        raise LogSetupError(f"unknown log format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not paths:
        raise LogSetupError("give at least one log file")
    extra: dict[str, Any] = {}
    if roster is not None:
        extra["user_family"], roles = roster_families(roster, masker)
        extra["people"] = frozenset(extra["user_family"]) | frozenset(roles)
        extra["user_patient"] = roster_patients(roster, masker)
        extra.update(roster_relations(roster, masker))
    if patients is not None:
        extra.update(patient_facts(patients, masker))
    if vip is not None:
        extra["vip_patients"] = patient_list(vip, masker)
    if coworkers is not None:
        extra["coworker_patients"] = patient_list(coworkers, masker)
    values = dict(detectors or {})
    if timezone:
        values["timezone"] = timezone
    try:
        settings = Settings.from_config(values, **extra)
    except (ValueError, TypeError) as exc:
        raise LogSetupError(f"detector settings: {exc}") from None
    try:
        zoneinfo.ZoneInfo(settings.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise LogSetupError(f"unknown time zone {settings.timezone!r}") from None
    key = None
    if chain_key_env:
        raw = os.environ.get(chain_key_env)
        if not raw:
            raise LogSetupError(f"the environment variable {chain_key_env} (chain MAC key) is "
                                "not set")
        try:
            key = bytes.fromhex(raw.strip())
        except ValueError:
            raise LogSetupError(f"{chain_key_env} must hold the MAC key in hex") from None
    sigma = [builtin_rules() if str(p) == "builtin" else p for p in sigma]
    for path in (*sigma, *anchors, *cloudtrail_keys):
        if not path.exists():
            raise LogSetupError(f"no such file or directory: {path}")
    if sigma:
        from hipaa_audit.logs.sigma import SigmaError, load_rules

        try:
            load_rules(list(sigma))
        except SigmaError as exc:
            raise LogSetupError(f"Sigma rule: {exc}") from None
    return LogOptions(tuple(paths), fmt, mapping_from(mapping, mapping_source), settings,
                      tuple(sigma), key, tuple(anchors), tuple(cloudtrail_keys), cache,
                      scheduler or None,
                      infer_timezone=not timezone and "timezone" not in (detectors or {}))


def load_mapping_file(path: Path) -> dict[str, Any]:
    """A column mapping from a TOML file (its top-level table)."""
    try:
        return parse_toml(_read(path, "column mapping"))
    except tomllib.TOMLDecodeError as exc:
        raise LogSetupError(f"{path}: not TOML: {exc}") from None


def load_settings_file(path: Path) -> dict[str, Any]:
    """Detector settings from a TOML file (``[detectors]`` or the top level)."""
    try:
        data = parse_toml(_read(path, "detector settings"))
    except tomllib.TOMLDecodeError as exc:
        raise LogSetupError(f"{path}: not TOML: {exc}") from None
    inner = data.get("detectors", data)
    return dict(inner) if isinstance(inner, dict) else {}
