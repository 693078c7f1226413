#!/usr/bin/env python3
"""The conformance test: every case of cases.json through every face, one verdict.

Each face has a runner that takes the expanded cases (Node and Python read JSON, C reads one
tab-separated line per case: name, op, arguments) and prints one JSON line per case:
``{"name": ..., "outcome": "ok" | CODE, "message": ...}``. A case passes when every face's
outcome is its ``expect`` and every face gave the same message (one message per rule).

    python3 tests/cross/conformance/conformance.py --node 'node run_node.js' --python '...' --c BIN

Ends with ``N passed, N failed``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def expand(v: Any) -> Any:
    """Replace {"$string_of_length": N} with a string of N 'x'."""
    if isinstance(v, dict):
        if set(v) == {"$string_of_length"}:
            return "x" * int(v["$string_of_length"])
        return {k: expand(x) for k, x in v.items()}
    if isinstance(v, list):
        return [expand(x) for x in v]
    return v


def flat_line(case: dict[str, Any]) -> str:
    """The C runner's input: the case's name and op, then its arguments as the C ABI takes
    them."""
    def js(v: Any) -> str:
        return "" if v is None else json.dumps(v)

    op = case["op"]
    if op == "config":
        fields = [case["name"], op, json.dumps(case["config"])]
    elif op == "subscribe":
        fields = [case["name"], op, case["pattern"], js(case.get("options"))]
    elif op == "publish":
        fields = [case["name"], op, case["type"], json.dumps(case["data"]), js(case.get("options"))]
    else:
        raise SystemExit(f"unknown op {op!r} in case {case['name']!r}")
    assert all("\t" not in f and "\n" not in f for f in fields), case["name"]
    return "\t".join(fields)


def run_face(cmd: list[str], input_path: Path, n: int) -> list[dict[str, Any]]:
    proc = subprocess.run(cmd + [str(input_path)], capture_output=True, text=True, timeout=300)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or len(rows) != n:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{cmd[0]}: exit {proc.returncode}, {len(rows)} of {n} rows")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", help="command that runs the Node runner")
    ap.add_argument("--python", help="command that runs the Python runner")
    ap.add_argument("--c", help="command that runs the C runner")
    ap.add_argument("--cases", default=str(HERE / "cases.json"))
    args = ap.parse_args()

    spec = json.loads(Path(args.cases).read_text())
    cases = [expand(c) for c in spec["cases"]]
    tmp = Path(tempfile.mkdtemp(prefix="eb-conformance-"))
    json_path = tmp / "cases.json"
    json_path.write_text(json.dumps({"client_config": spec["client_config"], "cases": cases}))
    flat_path = tmp / "cases.tsv"
    flat_path.write_text(json.dumps(spec["client_config"]) + "\n"
                         + "".join(flat_line(c) + "\n" for c in cases))

    faces: dict[str, list[dict[str, Any]]] = {}
    for face, cmd, path in (("node", args.node, json_path), ("python", args.python, json_path),
                            ("c", args.c, flat_path)):
        if cmd:
            faces[face] = run_face(shlex.split(cmd), path, len(cases))
    if not faces:
        raise SystemExit("no face to run (give --node, --python and/or --c)")

    passed = failed = 0
    for i, case in enumerate(cases):
        problems = []
        messages = {}
        for face, rows in faces.items():
            row = rows[i]
            if row["name"] != case["name"]:
                problems.append(f"{face} answered case {row['name']!r}")
                continue
            if row["outcome"] != case["expect"]:
                problems.append(f"{face}: {row['outcome']} ({row.get('message', '')!r}), expected {case['expect']}")
            messages[face] = row.get("message") or ""
        if len(set(messages.values())) > 1:
            problems.append("messages differ: " + "; ".join(f"{f}={m!r}" for f, m in messages.items()))
        if problems:
            failed += 1
            print(f"FAIL {case['name']}")
            for p in problems:
                print(f"     {p}")
        else:
            passed += 1
            msg = next(iter(messages.values()), "")
            print(f"ok   {case['name']}: {case['expect']}" + (f" ({msg})" if msg else ""))
    print(f"conformance ({', '.join(faces)}): {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
