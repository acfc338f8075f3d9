"""The history store: every assessment run, its findings and coverage, in SQLite.

Each finished run is chained to the one finished before it: its ``hash`` is the SHA-256 of the
predecessor's hash, the run's metadata (canonical JSON) and a digest of all its findings, so a
finding edited, a run deleted or reordered, or a hash rewritten is found by :meth:`Store.verify`.
Findings are stored as the masked ``hipaa-audit.findings/1`` objects the outputs write: the
store holds no value read from a scanned asset (unless the run was made with ``--reveal-phi``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hipaa_audit.document import FindingDoc, RunMeta, StoredFinding
from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.model import Finding
from hipaa_audit.outfiles import FILE_MODE, private_dirs
from hipaa_audit.redaction import data_dir

GENESIS = "0" * 64
SCHEMA_VERSION = 1
DEFAULT_NAME = "history.db"
_BATCH = 2000

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    tool_version TEXT NOT NULL,
    config_digest TEXT,
    chain_pos INTEGER UNIQUE,
    meta TEXT,
    findings_digest TEXT,
    prev_hash TEXT,
    hash TEXT
);
CREATE TABLE IF NOT EXISTS findings (
    run_seq INTEGER NOT NULL REFERENCES runs(seq),
    fid TEXT NOT NULL,
    check_id TEXT NOT NULL,
    grp TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    rank INTEGER NOT NULL,
    category TEXT NOT NULL,
    asset TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_run ON findings (run_seq, fid);
CREATE INDEX IF NOT EXISTS findings_group ON findings (run_seq, check_id, grp);
"""


class StoreError(HipaaAuditError):
    """The store cannot be opened, or a run reference does not name a run."""


def default_path() -> Path:
    """Return the embedded default: ``history.db`` in the user data directory."""
    return data_dir() / DEFAULT_NAME


def canonical(obj: Any) -> str:
    """Serialise ``obj`` as canonical JSON (sorted keys, no spaces): the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, meta: str, findings_digest: str) -> str:
    """Return the hash of a run: predecessor's hash, canonical metadata, findings digest."""
    h = hashlib.sha256()
    for part in (prev_hash, meta, findings_digest):
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One run as kept in the store."""

    seq: int
    id: str
    command: str
    started_at: str
    finished_at: str | None
    tool_version: str
    config_digest: str | None
    #: as stored: a run of an older version may lack a key (read those with ``.get``)
    meta: RunMeta
    hash: str | None

    @property
    def complete(self) -> bool:
        """Whether the run was finished and chained (an interrupted run is not)."""
        return self.hash is not None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing :meth:`Store.verify` found wrong, on one run."""

    run_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Diff:
    """Findings new in B, resolved since A, and persisting, by stable id."""

    base: StoredRun
    head: StoredRun
    new: list[FindingDoc]
    resolved: list[FindingDoc]
    persisting: int


#: The files SQLite keeps beside the database.
COMPANIONS = ("-wal", "-shm", "-journal")


def _create_private(path: Path) -> None:
    """Create an empty database file, mode 0600 whatever the umask, unless one exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def _private_companions(path: Path) -> None:
    """Give SQLite's -wal, -shm and -journal files no more access than the database has."""
    try:
        mode = os.stat(path).st_mode & 0o666
    except OSError:
        return
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        try:
            st = os.lstat(companion)
        except OSError:
            continue
        if st.st_uid == os.geteuid() and st.st_mode & 0o777 & ~mode:
            os.chmod(companion, st.st_mode & mode & 0o777)


class Store:
    """An SQLite history store (created on first use).

    It holds every finding of every run (with ``--reveal-phi``, the values too): a new store
    is created mode 0600 in folders created 0700, whatever the umask, and SQLite's companion
    files get no more access than the database file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_dirs(path.parent)
            _create_private(path)
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            _private_companions(path)
            self.db.execute("PRAGMA busy_timeout=30000")
            self.db.executescript(_DDL)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),))
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the history store {path}: {exc}") from None

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing -----------------------------------------------------------------------------

    def open_run(self, run_id: str, command: str, started_at: str, tool_version: str,
                 config_digest: str | None) -> int:
        """Record that a run started; return its sequence number."""
        cur = self.db.execute(
            "INSERT INTO runs (id, command, started_at, tool_version, config_digest) "
            "VALUES (?, ?, ?, ?, ?)", (run_id, command, started_at, tool_version, config_digest))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_findings(self, seq: int, group: str, findings: Iterable[Finding]) -> None:
        """Store findings of a run under their asset group (call as often as needed)."""
        rows = [
            (seq, f.id, f.check_id, group, f.status.value, f.severity.value, f.severity.rank,
             f.category.value, f.asset, canonical(f.as_dict()))
            for f in findings
        ]
        self.db.execute("BEGIN")
        for i in range(0, len(rows), _BATCH):
            self.db.executemany("INSERT INTO findings VALUES (?,?,?,?,?,?,?,?,?,?)",
                                rows[i:i + _BATCH])
        self.db.execute("COMMIT")

    def close_run(self, seq: int, finished_at: str, meta: RunMeta) -> str:
        """Finish a run: chain it after the last finished run; return its hash."""
        meta_text = canonical(meta)
        digest = self.findings_digest(seq)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            last = self.db.execute(
                "SELECT chain_pos, hash FROM runs WHERE hash IS NOT NULL "
                "ORDER BY chain_pos DESC LIMIT 1").fetchone()
            pos, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            run_hash = chain_hash(prev, self._hashed_meta(seq, finished_at, meta_text), digest)
            self.db.execute(
                "UPDATE runs SET finished_at=?, chain_pos=?, meta=?, findings_digest=?, "
                "prev_hash=?, hash=? WHERE seq=?",
                (finished_at, pos, meta_text, digest, prev, run_hash, seq))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return run_hash

    def _hashed_meta(self, seq: int, finished_at: str | None, meta_text: str) -> str:
        row = self.db.execute(
            "SELECT id, command, started_at, tool_version, config_digest FROM runs WHERE seq=?",
            (seq,)).fetchone()
        return canonical([*row, finished_at, meta_text])

    def findings_digest(self, seq: int) -> str:
        """Return the SHA-256 over a run's findings (group and object), in id order."""
        h = hashlib.sha256()
        for grp, doc in self.db.execute(
                "SELECT grp, doc FROM findings WHERE run_seq=? ORDER BY fid, grp, doc", (seq,)):
            h.update(f"{grp}\t{doc}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    # reading -----------------------------------------------------------------------------

    _COLUMNS = ("seq, id, command, started_at, finished_at, tool_version, config_digest, "
                "meta, hash")

    def _run(self, row: tuple[Any, ...]) -> StoredRun:
        return StoredRun(seq=row[0], id=row[1], command=row[2], started_at=row[3],
                         finished_at=row[4], tool_version=row[5], config_digest=row[6],
                         meta=json.loads(row[7] or "{}"), hash=row[8])  # none if interrupted

    def runs(self) -> list[StoredRun]:
        """Every run, oldest first (interrupted runs included)."""
        return [self._run(r) for r in self.db.execute(
            f"SELECT {self._COLUMNS} FROM runs ORDER BY seq")]

    def complete_runs(self) -> list[StoredRun]:
        """Finished runs in chain order, oldest first."""
        return [self._run(r) for r in self.db.execute(
            f"SELECT {self._COLUMNS} FROM runs WHERE hash IS NOT NULL ORDER BY chain_pos")]

    def resolve(self, ref: str) -> StoredRun:
        """Return the run named by ``ref``: ``latest``, ``previous``, an id or a unique prefix."""
        done = self.complete_runs()
        if ref in ("latest", "previous"):
            wanted = 1 if ref == "latest" else 2
            if len(done) < wanted:
                raise StoreError(f"the history store {self.path} has no {ref} run "
                                 f"({len(done)} finished run(s))")
            return done[-wanted]
        every = self.runs()
        matches = [r for r in every if r.id == ref] or [r for r in every if r.id.startswith(ref)]
        if len(matches) != 1:
            what = "no run" if not matches else f"{len(matches)} runs"
            raise StoreError(f"{what} in {self.path} match {ref!r}; see: hipaa-audit runs list")
        return matches[0]

    def previous(self, run: StoredRun) -> StoredRun | None:
        """Return the finished run chained just before ``run``."""
        done = self.complete_runs()
        for before, after in itertools.pairwise(done):
            if after.seq == run.seq:
                return before
        return None

    def count_findings(self, seq: int) -> int:
        """Return how many findings a run holds."""
        n: int = self.db.execute("SELECT COUNT(*) FROM findings WHERE run_seq=?",
                                 (seq,)).fetchone()[0]
        return n

    def finding_ids(self, seq: int) -> set[str]:
        """Return the stable ids of a run's findings."""
        return {fid for (fid,) in self.db.execute(
            "SELECT DISTINCT fid FROM findings WHERE run_seq=?", (seq,))}

    def aggregate(self, seq: int) -> list[tuple[str, str, str, str, str, int, int]]:
        """Return ``(check, group, status, severity, category, findings, assets)`` rows."""
        return list(self.db.execute(
            "SELECT check_id, grp, status, severity, category, COUNT(*), COUNT(DISTINCT asset) "
            "FROM findings WHERE run_seq=? GROUP BY check_id, grp, status, severity, category",
            (seq,)))

    def assets_in(self, seq: int, categories: Iterable[str]) -> Iterator[str]:
        """Every distinct asset of run ``seq`` with a failed finding of one of ``categories``."""
        cats = list(categories)
        marks = ",".join("?" * len(cats))
        for (asset,) in self.db.execute(
                f"SELECT DISTINCT asset FROM findings WHERE run_seq=? AND status='fail' "
                f"AND category IN ({marks})", (seq, *cats)):
            yield str(asset)

    def sample_assets(self, seq: int, per_group: int = 3) -> dict[tuple[str, str], list[str]]:
        """Return up to ``per_group`` assets of each (check, group), most severe first."""
        out: dict[tuple[str, str], list[str]] = {}
        for check_id, grp, asset in self.db.execute(
                "SELECT check_id, grp, asset FROM (SELECT check_id, grp, asset, ROW_NUMBER() "
                "OVER (PARTITION BY check_id, grp ORDER BY rank DESC, asset) AS n "
                "FROM (SELECT DISTINCT check_id, grp, asset, rank FROM findings "
                "WHERE run_seq=?)) WHERE n <= ? ORDER BY check_id, grp, n", (seq, per_group)):
            out.setdefault((check_id, grp), []).append(asset)
        return out

    def findings(self, seq: int, limit: int | None = None) -> Iterator[StoredFinding]:
        """Yield a run's findings (with ``group``), failures first, most severe first."""
        sql = ("SELECT grp, doc FROM findings WHERE run_seq=? "
               "ORDER BY status='error', rank DESC, check_id, asset, fid")
        args: tuple[Any, ...] = (seq,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (seq, limit)
        for grp, doc in self.db.execute(sql, args):
            d: StoredFinding = json.loads(doc)
            d["group"] = grp
            yield d

    def tally_assets(self, seq: int, targets: list[str]) -> list[tuple[str, str, int]]:
        """Return ``(check, status, assets)`` for findings on or under any of ``targets``.

        An asset is under a target when it continues it with ``/``, ``!`` (a container
        member) or ``:``; ``s3://scans`` does not match ``s3://scans-old``.
        """
        if not targets:
            return []
        cond = " OR ".join(
            "asset = ? OR (substr(asset, 1, ?) = ? AND substr(asset, ?, 1) IN ('/', '!', ':'))"
            for _ in targets)
        args: list[Any] = [seq]
        for t in targets:
            t = t.rstrip("/") or t
            args += [t, len(t), t, len(t) + 1]
        return list(self.db.execute(
            f"SELECT check_id, status, COUNT(DISTINCT asset) FROM findings "
            f"WHERE run_seq=? AND ({cond}) GROUP BY check_id, status", args))

    def diff(self, base: StoredRun, head: StoredRun, limit: int | None = None) -> Diff:
        """Compare two runs by stable finding id."""
        def side(a: int, b: int) -> list[FindingDoc]:
            sql = ("SELECT doc FROM findings WHERE run_seq=? AND fid NOT IN "
                   "(SELECT fid FROM findings WHERE run_seq=?) ORDER BY rank DESC, check_id, asset")
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            return [json.loads(d) for (d,) in self.db.execute(sql, (a, b))]

        persisting: int = self.db.execute(
            "SELECT COUNT(DISTINCT fid) FROM findings WHERE run_seq=? AND fid IN "
            "(SELECT fid FROM findings WHERE run_seq=?)", (head.seq, base.seq)).fetchone()[0]
        return Diff(base, head, new=side(head.seq, base.seq), resolved=side(base.seq, head.seq),
                    persisting=persisting)

    def verify(self) -> tuple[int, list[Problem]]:
        """Recompute the chain; return how many runs were checked and what is wrong."""
        problems: list[Problem] = []
        prev = GENESIS
        expected_pos = 1
        done = self.db.execute(
            "SELECT seq, id, chain_pos, finished_at, meta, findings_digest, prev_hash, hash "
            "FROM runs WHERE hash IS NOT NULL ORDER BY chain_pos").fetchall()
        for seq, run_id, pos, finished_at, meta, digest, prev_hash, run_hash in done:
            if pos != expected_pos:
                problems.append(Problem(run_id, f"chain position {pos} where {expected_pos} was "
                                        "expected: a run before it was deleted"))
            if prev_hash != prev:
                problems.append(Problem(run_id, "does not follow the run before it (a run was "
                                        "deleted, reordered or rewritten)"))
            actual = self.findings_digest(seq)
            if actual != digest:
                problems.append(Problem(run_id, "its findings were changed, added or deleted "
                                        "after the run was stored"))
            if chain_hash(prev_hash or "", self._hashed_meta(seq, finished_at, meta or ""),
                          actual) != run_hash:
                problems.append(Problem(run_id, "its stored hash does not match its content"))
            prev = run_hash
            expected_pos = pos + 1
        return len(done), problems
