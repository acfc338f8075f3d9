"""Write a stored run's complete findings as ``findings.json`` and ``findings.csv``.

The same files go into the report folder and, attached, inside the risk-analysis PDF; both are
built from the history store, so ``hipaa-audit report`` can rebuild them for any past run.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from hipaa_audit.model import SCHEMA, tool_info
from hipaa_audit.outfiles import open_output
from hipaa_audit.output.csvout import COLUMNS, dict_row
from hipaa_audit.output.jsonout import PLACEHOLDER, dumps, new_spool, write_with_spool
from hipaa_audit.store import Store, StoredRun


def sha256_file(path: Path) -> str:
    """Return the SHA-256 of a file, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def export_findings(store: Store, run: StoredRun, json_path: Path, csv_path: Path) -> None:
    """Write every finding of ``run`` to ``json_path`` (findings schema) and ``csv_path``.

    Each is written whole or not at all (:func:`hipaa_audit.outfiles.open_output`).
    """
    run_obj = dict(run.meta.get("run", {}))
    run_obj["assets"] = run.meta.get("stats", {})
    run_obj["hash"] = run.hash
    head = {"schema": SCHEMA, "tool": dict(tool_info(run.tool_version)), "run": run_obj,
            "coverage": run.meta.get("coverage", []), "findings": PLACEHOLDER}
    spool = new_spool()
    with open_output(csv_path, newline="") as fc, open_output(json_path) as fj:
        writer = csv.writer(fc, lineterminator="\n")
        writer.writerow(COLUMNS)
        first = True
        for doc in store.findings(run.seq):
            doc.pop("group", None)
            if not first:
                spool.write(",\n")
            spool.write(dumps(doc))
            first = False
            writer.writerow(dict_row(doc))
        write_with_spool(fj, json.dumps(head, ensure_ascii=False, indent=1), spool)
