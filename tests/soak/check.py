"""Ledger checker of the soak (scripts/soak.sh). Reads the NDJSON ledgers of one run and proves:

1. every publish has exactly one outcome (and no outcome lacks its publish);
2. every successful publish was delivered to each subscriber, or its time (from the call to its
   outcome) overlaps a gap that subscriber reported (or a time it was not subscribed: before its
   `ready`, after it began to stop, or an outage still open at the end);
3. no subscriber got an event twice, an event never published, or an event whose publish was
   reported failed before it was sent (only OUTCOME_UNKNOWN may go either way);
4. RSS and open fds of every process stay flat (the last third of the samples against the
   middle third);
5. durable groups (dur-*.ndjson, one member each, and durable.ndjson, what Redis said after the
   drain): every persistent *success* was delivered to the group at least once, gap or no gap
   (duplicates are allowed, at-least-once, and counted); no delivery of an event that was not
   published persistent, or whose publish was reported failed before it was sent; the member
   finished; its group ended with nothing pending (XPENDING 0) and no dead letters.
   A persistent success with `deliveredTo` 0 is stored in the stream but its live copy reached
   nobody (its PUBLISH failed after the XADD): rule 2 does not ask the pub/sub subscribers for it.

and prints a one-screen summary with the RSS and fd curves. Exit status 1 when a check fails.

    python tests/soak/check.py <run-dir> [--expect py,c] [--durable py,c]
    # pub.ndjson, sub-*.ndjson, dur-*.ndjson, durable.ndjson, samples.ndjson, faults.ndjson
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional

Record = dict[str, Any]

# Clock readings of two processes around one moment differ by scheduling; a gap edge and a
# publish time that close count as overlapping.
TOLERANCE_MS = 100
# Flatness: the last third's median may exceed the middle third's by this factor plus slack.
RSS_FACTOR, RSS_SLACK_KB = 1.25, 16 * 1024
FD_SLACK = 8


def load(path: Path) -> list[Record]:
    out: list[Record] = []
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                # A process killed mid-line leaves a torn last line; anything else is a bug.
                out.append({"k": "torn", "line": n})
    return out


def iso_ms(s: str) -> int:
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


def state_of(r: Record) -> Record:
    """A state record's fields, whether flat (Node, Python) or under `ev` (C)."""
    ev = r.get("ev")
    return {**r, **ev} if isinstance(ev, dict) else r


def windows(sub: list[Record], end_ms: int) -> list[tuple[int, int]]:
    """The times a subscriber may have missed events: before `ready`, each reported gap, an
    outage of its subscriber link not yet closed by a gap, and from `stopping` on."""
    w: list[tuple[int, int]] = []
    ready = next((r["t"] for r in sub if r.get("k") == "ready"), end_ms)
    w.append((0, ready))
    open_since: Optional[int] = None
    for r in sub:
        if r.get("k") == "stopping":
            w.append((r["t"], end_ms))
        if r.get("k") != "state":
            continue
        s = state_of(r)
        if s.get("connection") not in (None, "subscriber"):
            continue
        if s.get("type") == "disconnected" and open_since is None:
            open_since = r["t"]
        elif s.get("type") == "gap":
            w.append((iso_ms(s["from"]), iso_ms(s["to"])))
            open_since = None
    if open_since is not None:
        w.append((open_since, end_ms))
    if not any(r.get("k") == "end" for r in sub):
        last = max((r.get("t", 0) for r in sub), default=0)
        w.append((last, end_ms))
    return w


def overlaps(a: tuple[int, int], ws: Iterable[tuple[int, int]], tol: int = TOLERANCE_MS) -> bool:
    return any(a[0] <= b[1] + tol and b[0] <= a[1] + tol for b in ws)


def flat(values: list[float], factor: float, slack: float) -> tuple[bool, float, float]:
    """(flat?, middle-third median, last-third median) of a sampled curve."""
    n = len(values)
    if n < 6:
        return True, values[0] if values else 0.0, values[-1] if values else 0.0
    mid = statistics.median(values[n // 3: 2 * n // 3])
    last = statistics.median(values[2 * n // 3:])
    return last <= mid * factor + slack, mid, last


def curve(values: list[float], width: int = 24) -> str:
    """At most `width` evenly spaced points of a curve, as numbers."""
    if not values:
        return "-"
    step = max(1, len(values) // width)
    pts = values[::step][:width]
    return " ".join(f"{v:g}" for v in pts)


def check(pub: list[Record], subs: dict[str, list[Record]], samples: list[Record],
          faults: list[Record], durs: Optional[dict[str, list[Record]]] = None,
          durable_end: Optional[list[Record]] = None) -> tuple[list[str], list[str]]:
    """(problems, summary lines)."""
    problems: list[str] = []
    lines: list[str] = []
    end_ms = max((r.get("t", 0) for rs in [pub, *subs.values()] for r in rs), default=0) + 1

    # 1. One outcome per publish.
    sends: dict[int, Record] = {}
    outs: dict[int, Record] = {}
    for r in pub:
        if r.get("k") == "torn":
            problems.append(f"publisher ledger: torn line {r['line']}")
        elif r.get("k") == "send":
            if r["id"] in sends:
                problems.append(f"publish {r['id']} sent twice")
            sends[r["id"]] = r
        elif r.get("k") == "out":
            if r["id"] in outs:
                problems.append(f"publish {r['id']} has two outcomes")
            outs[r["id"]] = r
    if not any(r.get("k") == "end" for r in pub):
        problems.append("the publisher did not finish (no `end` record)")
    missing_out = sorted(set(sends) - set(outs))
    if missing_out:
        problems.append(f"{len(missing_out)} publishes without an outcome (first: {missing_out[:5]})")
    stray = sorted(set(outs) - set(sends))
    if stray:
        problems.append(f"{len(stray)} outcomes without a publish (first: {stray[:5]})")
    ok = {i for i, o in outs.items() if o.get("ok")}
    persistent = {i for i, r in sends.items() if r.get("p")}
    persistent_ok = ok & persistent
    # Stored in the stream, live copy lost (its PUBLISH failed after the XADD): not owed live.
    live_lost = {i for i in persistent_ok if outs[i].get("deliveredTo") == 0}
    codes = Counter(o.get("code") for o in outs.values() if not o.get("ok"))
    span = {i: (sends[i]["t"], outs[i]["t"]) for i in outs if i in sends}

    lines.append(f"{'publisher':<12} {'sent':>7} {'ok':>7} {'unknown':>8} {'failed':>7}  failed by code")
    lines.append(f"{'node':<12} {len(sends):>7} {len(ok):>7} {codes.get('OUTCOME_UNKNOWN', 0):>8} "
                 f"{sum(codes.values()) - codes.get('OUTCOME_UNKNOWN', 0):>7}  "
                 + (", ".join(f"{c}={n}" for c, n in sorted(codes.items()) if c != "OUTCOME_UNKNOWN") or "-"))
    if persistent:
        pcodes = Counter(outs[i].get("code") for i in persistent if i in outs and not outs[i].get("ok"))
        lines.append(f"{'persistent':<12} {len(persistent):>7} {len(persistent_ok):>7} "
                     f"{pcodes.get('OUTCOME_UNKNOWN', 0):>8} "
                     f"{sum(pcodes.values()) - pcodes.get('OUTCOME_UNKNOWN', 0):>7}  "
                     f"live copy lost={len(live_lost)}")
    lines.append("")

    # 2 and 3. Deliveries.
    lines.append(f"{'subscriber':<12} {'got':>7} {'missed':>7} {'in gaps':>8} {'LOST':>5} {'dup':>4} "
                 f"{'bad':>4} {'gaps':>5} {'gap ms':>7}")
    for name, recs in sorted(subs.items()):
        got = [r["id"] for r in recs if r.get("k") == "recv"]
        torn = [r for r in recs if r.get("k") in ("torn", "bad")]
        if torn:
            problems.append(f"{name}: {len(torn)} unreadable records")
        if not any(r.get("k") == "end" for r in recs):
            problems.append(f"{name}: the subscriber did not finish (no `end` record)")
        c = Counter(got)
        dups = sorted(i for i, n in c.items() if n > 1)
        if dups:
            problems.append(f"{name}: {len(dups)} events delivered twice (first: {dups[:5]})")
        never = sorted(i for i in c if i not in sends)
        if never:
            problems.append(f"{name}: {len(never)} deliveries of events never published (first: {never[:5]})")
        failed_but_got = sorted(i for i in c if i in outs and not outs[i].get("ok")
                                and outs[i].get("code") != "OUTCOME_UNKNOWN")
        if failed_but_got:
            problems.append(f"{name}: {len(failed_but_got)} events delivered although their publish "
                            f"was reported failed before sending (first: "
                            f"{[(i, outs[i].get('code')) for i in failed_but_got[:5]]})")
        ws = windows(recs, end_ms)
        missed = sorted(ok - set(c))
        excused = [i for i in missed if i in live_lost or overlaps(span[i], ws)]
        lost = [i for i in missed if i not in live_lost and not overlaps(span[i], ws)]
        if lost:
            problems.append(f"{name}: {len(lost)} successful publishes never delivered outside any gap "
                            f"(first: {[(i, span[i]) for i in lost[:3]]})")
        gaps = [state_of(r) for r in recs if r.get("k") == "state" and state_of(r).get("type") == "gap"]
        gap_ms = sum(int(g.get("duration", 0)) for g in gaps)
        lines.append(f"{name:<12} {len(got):>7} {len(missed):>7} {len(excused):>8} {len(lost):>5} "
                     f"{len(dups):>4} {len(failed_but_got) + len(never):>4} {len(gaps):>5} {gap_ms:>7}")
    lines.append("")

    # 5. Durable groups.
    if durs:
        ends = {r.get("member"): r for r in (durable_end or []) if r.get("k") == "durable-end"}
        lines.append(f"{'durable':<12} {'owed':>7} {'got':>7} {'LOST':>5} {'dup':>5} {'bad':>4} "
                     f"{'redeliv':>7} {'pending':>7} {'lag':>5} {'dead':>5}")
        for name, recs in sorted(durs.items()):
            label = f"dur-{name}"
            got = [r["id"] for r in recs if r.get("k") == "recv"]
            if any(r.get("k") in ("torn", "bad") for r in recs):
                problems.append(f"{label}: unreadable records")
            if not any(r.get("k") == "end" for r in recs):
                problems.append(f"{label}: the member did not finish (no `end` record)")
            c = Counter(got)
            lost = sorted(persistent_ok - set(c))
            if lost:
                problems.append(f"{label}: {len(lost)} persistent publishes acknowledged but never "
                                f"delivered to the group (first: {[(i, span.get(i)) for i in lost[:3]]})")
            not_persistent = sorted(i for i in c if i not in persistent)
            if not_persistent:
                problems.append(f"{label}: {len(not_persistent)} deliveries of events not published "
                                f"persistent (first: {not_persistent[:5]})")
            failed_but_got = sorted(i for i in c if i in persistent and i in outs and not outs[i].get("ok")
                                    and outs[i].get("code") != "OUTCOME_UNKNOWN")
            if failed_but_got:
                problems.append(f"{label}: {len(failed_but_got)} events delivered although their "
                                f"persistent publish was reported failed before sending (first: "
                                f"{[(i, outs[i].get('code')) for i in failed_but_got[:5]]})")
            dup_ids = [i for i, n in c.items() if n > 1]
            extra = sum(n - 1 for n in c.values())
            redelivered = sum(1 for r in recs if r.get("k") == "recv" and int(r.get("attempt") or 1) > 1)
            end = ends.get(name)
            pending = lag = dead = None
            if end is None:
                problems.append(f"{label}: no final XPENDING / dead-letter reading (durable.ndjson)")
            else:
                pending, lag, dead = end.get("pending"), end.get("lag"), end.get("dead")
                if pending != 0:
                    problems.append(f"{label}: group {end.get('group')} ended with {pending} pending "
                                    f"entries (XPENDING)")
                if dead != 0:
                    problems.append(f"{label}: {dead} dead letters")
            lines.append(f"{label:<12} {len(persistent_ok):>7} {len(c):>7} {len(lost):>5} "
                         f"{len(dup_ids):>5} {len(not_persistent) + len(failed_but_got):>4} "
                         f"{redelivered:>7} {str(pending):>7} {str(lag):>5} {str(dead):>5}")
            if dup_ids:
                lines.append(f"{'':<12} {len(dup_ids)} events delivered more than once ({extra} extra "
                             f"deliveries; first: {sorted(dup_ids)[:5]}): at-least-once allows it")
        lines.append("")

    # 4. Flat RSS and fds.
    by_proc: dict[str, list[Record]] = defaultdict(list)
    for s in samples:
        if s.get("k") == "sample":
            by_proc[s["proc"]].append(s)
    for proc, ss in sorted(by_proc.items()):
        ss.sort(key=lambda s: s["t"])
        rss = [round(s["rss_kb"] / 1024, 1) for s in ss]
        fds = [float(s["fds"]) for s in ss]
        rss_ok, rss_mid, rss_last = flat([s["rss_kb"] for s in ss], RSS_FACTOR, RSS_SLACK_KB)
        fd_ok, fd_mid, fd_last = flat(fds, 1.0, FD_SLACK)
        if not rss_ok:
            problems.append(f"{proc}: RSS grew from {rss_mid / 1024:.1f} MB to {rss_last / 1024:.1f} MB")
        if not fd_ok:
            problems.append(f"{proc}: open fds grew from {fd_mid:g} to {fd_last:g}")
        lines.append(f"{proc:<8} RSS MB {curve(rss)}")
        lines.append(f"{'':<8} fds    {curve(fds)}")
    if by_proc:
        lines.append("")

    kinds = Counter(f.get("what", "?") for f in faults if f.get("k") == "fault")
    lines.append("faults: " + (", ".join(f"{k}={n}" for k, n in sorted(kinds.items())) or "none"))
    return problems, lines


def main(argv: list[str]) -> int:
    args = argv[1:]
    expect: list[str] = []
    expect_durable: list[str] = []
    while len(args) >= 3 and args[-2] in ("--expect", "--durable"):
        names = [s for s in args[-1].split(",") if s]
        if args[-2] == "--expect":
            expect = names
        else:
            expect_durable = names
        args = args[:-2]
    if len(args) != 1:
        print("usage: python tests/soak/check.py <run-dir> [--expect py,c] [--durable py,c]", file=sys.stderr)
        return 2
    d = Path(args[0])
    subs = {p.stem.removeprefix("sub-"): load(p) for p in sorted(d.glob("sub-*.ndjson"))}
    durs = {p.stem.removeprefix("dur-"): load(p) for p in sorted(d.glob("dur-*.ndjson"))}
    problems, lines = check(load(d / "pub.ndjson"), subs, load(d / "samples.ndjson"), load(d / "faults.ndjson"),
                            durs, load(d / "durable.ndjson"))
    for name in expect:
        if name not in subs:
            problems.insert(0, f"{name}: no ledger (sub-{name}.ndjson): the subscriber never started")
    for name in expect_durable:
        if name not in durs:
            problems.insert(0, f"dur-{name}: no ledger (dur-{name}.ndjson): the durable member never started")
    print("\n".join(lines))
    print()
    if problems:
        print(f"LEDGER CHECK FAILED ({len(problems)}):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("ledger check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
