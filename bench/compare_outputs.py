"""Checks that two runs wrote the same rows and exports (a speed change must not change behaviour).

    .venv/bin/python bench/compare_outputs.py A.duckdb A_EXPORTS B.duckdb B_EXPORTS

Compares every warehouse table but ``runs`` (row multisets, with ``run_id`` / ``pick_run_id`` removed since
each run has its own id) and every export file (JSON, with ``generated_at`` and ``run_id`` removed).
Prints the differences and exits 1 when there are any, 0 when both runs wrote the same.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import duckdb

VOLATILE_COLUMNS = {"run_id", "pick_run_id"}
VOLATILE_KEYS = {"generated_at", "run_id"}


def table_rows(path: str) -> dict[str, Counter]:
    con = duckdb.connect(path, read_only=True)
    out = {}
    for (table,) in con.execute("SHOW TABLES").fetchall():
        if table == "runs":
            continue
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in VOLATILE_COLUMNS]
        rows = con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
        out[table] = Counter(repr(r) for r in rows)
    con.close()
    return out


def _scrub(doc):
    if isinstance(doc, dict):
        return {k: _scrub(v) for k, v in doc.items() if k not in VOLATILE_KEYS}
    if isinstance(doc, list):
        return [_scrub(v) for v in doc]
    return doc


def export_docs(folder: str) -> dict[str, object]:
    root = Path(folder)
    return {str(p.relative_to(root)): _scrub(json.loads(p.read_text())) for p in sorted(root.rglob("*.json"))}


def main(argv: list[str]) -> int:
    wa, ea, wb, eb = argv
    problems = []
    ta, tb = table_rows(wa), table_rows(wb)
    for table in sorted(set(ta) | set(tb)):
        a, b = ta.get(table, Counter()), tb.get(table, Counter())
        if a != b:
            only_a, only_b = a - b, b - a
            example_a, example_b = next(iter(only_a), "-")[:300], next(iter(only_b), "-")[:300]
            problems.append(f"table {table}: {sum(only_a.values())} rows only in A, {sum(only_b.values())} "
                            f"only in B; e.g. A {example_a} / B {example_b}")
    da, db = export_docs(ea), export_docs(eb)
    for rel in sorted(set(da) | set(db)):
        if da.get(rel) != db.get(rel):
            problems.append(f"export {rel} differs")
    n_rows = sum(sum(c.values()) for c in ta.values())
    for p in problems:
        print(p)
    print(f"compared {len(ta)} tables ({n_rows} rows) and {len(da)} exports: "
          + ("SAME" if not problems else f"{len(problems)} difference(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
