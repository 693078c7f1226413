"""Unit tests of the soak's ledger checker (check.py) on hand-made ledgers: each rule is shown
to pass a clean run and to catch the fault it exists for.

    python -m pytest -q tests/soak/test_check.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check  # noqa: E402

T0 = 1_700_000_000_000


def iso(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def publisher(n: int, fail: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """n publishes 1 s apart, each answered 10 ms later; `fail` maps ids to error codes."""
    fail = fail or {}
    recs: list[dict[str, Any]] = [{"k": "ready", "t": T0}]
    for i in range(n):
        t = T0 + 1000 * (i + 1)
        recs.append({"k": "send", "id": i, "t": t})
        if i in fail:
            recs.append({"k": "out", "id": i, "t": t + 10, "ok": False, "code": fail[i]})
        else:
            recs.append({"k": "out", "id": i, "t": t + 10, "ok": True, "deliveredTo": 1})
    recs.append({"k": "end", "t": T0 + 1000 * (n + 2)})
    return recs


def subscriber(ids: list[int], extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = [{"k": "ready", "t": T0 - 10}]
    recs += [{"k": "recv", "id": i, "t": T0 + 1000 * (i + 1) + 5} for i in ids]
    recs += extra or []
    recs.append({"k": "stopping", "t": T0 + 1000 * 1000})
    recs.append({"k": "end", "t": T0 + 1000 * 1001})
    return recs


def samples(proc: str, rss_kb: list[int], fds: list[int]) -> list[dict[str, Any]]:
    return [{"k": "sample", "proc": proc, "t": T0 + 3000 * i, "rss_kb": r, "fds": f}
            for i, (r, f) in enumerate(zip(rss_kb, fds))]


def run(pub: list[dict[str, Any]], subs: dict[str, list[dict[str, Any]]],
        smp: list[dict[str, Any]] | None = None) -> list[str]:
    problems, lines = check.check(pub, subs, smp or [], [{"k": "fault", "what": "latency"}])
    assert lines, "a summary is printed"
    return problems


def test_a_clean_run_passes() -> None:
    assert run(publisher(10), {"py": subscriber(list(range(10))), "c": subscriber(list(range(10)))},
               samples("pub", [50_000] * 12, [20] * 12)) == []


def test_a_publish_without_outcome_is_caught() -> None:
    pub = [r for r in publisher(5) if not (r["k"] == "out" and r["id"] == 3)]
    assert any("without an outcome" in p for p in run(pub, {"py": subscriber([0, 1, 2, 4])}))


def test_two_outcomes_for_one_publish_are_caught() -> None:
    pub = publisher(3) + [{"k": "out", "id": 1, "t": T0 + 9000, "ok": False, "code": "TIMEOUT"}]
    assert any("two outcomes" in p for p in run(pub, {"py": subscriber([0, 1, 2])}))


def test_a_publisher_that_did_not_finish_is_caught() -> None:
    pub = [r for r in publisher(3) if r["k"] != "end"]
    assert any("did not finish" in p for p in run(pub, {"py": subscriber([0, 1, 2])}))


def test_a_success_lost_outside_any_gap_is_caught() -> None:
    problems = run(publisher(5), {"py": subscriber([0, 1, 3, 4]), "c": subscriber([0, 1, 2, 3, 4])})
    assert len(problems) == 1 and problems[0].startswith("py:") and "never delivered" in problems[0]


def test_a_success_missed_inside_a_reported_gap_is_excused() -> None:
    gap = {"k": "state", "type": "gap", "connection": "subscriber", "t": T0 + 4000,
           "from": iso(T0 + 2500), "to": iso(T0 + 3500), "duration": 1000}
    assert run(publisher(5), {"py": subscriber([0, 1, 3, 4], [gap])}) == []


def test_a_c_style_gap_under_ev_is_read() -> None:
    gap = {"k": "state", "type": "gap", "t": T0 + 4000,
           "ev": {"type": "gap", "from": iso(T0 + 2500), "to": iso(T0 + 3500), "duration": 1000}}
    assert run(publisher(5), {"c": subscriber([0, 1, 3, 4], [gap])}) == []


def test_a_gap_elsewhere_does_not_excuse() -> None:
    gap = {"k": "state", "type": "gap", "connection": "subscriber", "t": T0 + 9000,
           "from": iso(T0 + 7000), "to": iso(T0 + 8000), "duration": 1000}
    assert any("never delivered" in p for p in run(publisher(5), {"py": subscriber([0, 1, 3, 4], [gap])}))


def test_an_outage_still_open_at_the_end_excuses_what_follows() -> None:
    down = {"k": "state", "type": "disconnected", "connection": "subscriber", "t": T0 + 2500}
    assert run(publisher(5), {"py": subscriber([0, 1], [down])}) == []


def test_a_duplicate_delivery_is_caught() -> None:
    assert any("twice" in p for p in run(publisher(3), {"py": subscriber([0, 1, 1, 2])}))


def test_delivered_after_failing_before_sending_is_caught_but_unknown_may_go_either_way() -> None:
    pub = publisher(4, {1: "TIMEOUT", 2: "OUTCOME_UNKNOWN"})
    problems = run(pub, {"py": subscriber([0, 1, 2, 3])})
    assert len(problems) == 1 and "reported failed before sending" in problems[0] and "TIMEOUT" in problems[0]
    assert run(pub, {"py": subscriber([0, 2, 3])}) == []
    assert run(pub, {"py": subscriber([0, 3])}) == []


def test_a_delivery_of_an_event_never_published_is_caught() -> None:
    assert any("never published" in p for p in run(publisher(2), {"py": subscriber([0, 1, 7])}))


def test_growing_rss_and_fds_are_caught() -> None:
    grow = [50_000 + 20_000 * i for i in range(12)]
    problems = run(publisher(2), {"py": subscriber([0, 1])}, samples("py", grow, [20] * 12))
    assert len(problems) == 1 and "RSS grew" in problems[0]
    problems = run(publisher(2), {"py": subscriber([0, 1])}, samples("py", [50_000] * 12, list(range(20, 80, 5))))
    assert len(problems) == 1 and "fds grew" in problems[0]


def test_main_reads_a_run_directory(tmp_path: Path, capsys: Any) -> None:
    def dump(name: str, recs: list[dict[str, Any]]) -> None:
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in recs))

    dump("pub.ndjson", publisher(3))
    dump("sub-py.ndjson", subscriber([0, 1, 2]))
    dump("sub-c.ndjson", subscriber([0, 2]))
    dump("samples.ndjson", samples("pub", [50_000] * 8, [20] * 8))
    dump("faults.ndjson", [{"k": "fault", "t": T0, "what": "reset"},
                          {"k": "cmd", "t": T0, "what": "reset soak-node-pub:pub"}])
    assert check.main(["check.py", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "LEDGER CHECK FAILED" in out and "c:" in out and "faults: reset=1" in out
    (tmp_path / "sub-c.ndjson").write_text("".join(json.dumps(r) + "\n" for r in subscriber([0, 1, 2])))
    assert check.main(["check.py", str(tmp_path)]) == 0
    assert check.main(["check.py", str(tmp_path), "--expect", "py,c,go"]) == 1
    assert "go: no ledger" in capsys.readouterr().out


def test_a_subscriber_that_did_not_finish_is_caught() -> None:
    sub = [r for r in subscriber([0, 1]) if r["k"] != "end"]
    assert any("did not finish" in p for p in run(publisher(2), {"py": sub}))


# ---- durable groups ----------------------------------------------------------------------------

def persistent_publisher(n: int, every: int = 2, fail: dict[int, str] | None = None,
                         live_lost: set[int] | None = None) -> list[dict[str, Any]]:
    """publisher(n) with one publish in `every` persistent (`p`); `live_lost` ids succeeded
    with deliveredTo 0 (stored, live copy lost)."""
    recs = publisher(n, fail)
    for r in recs:
        if r["k"] in ("send", "out"):
            r["p"] = r["id"] % every == 0
            if r["k"] == "out" and r["id"] in (live_lost or set()):
                r["deliveredTo"] = 0
    return recs


def member(ids: list[int], attempts: dict[int, int] | None = None,
           finished: bool = True) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = [{"k": "ready", "t": T0 - 10}]
    recs += [{"k": "recv", "id": i, "t": T0 + 1000 * (i + 1) + 5, "attempt": (attempts or {}).get(i, 1)}
             for i in ids]
    recs.append({"k": "stopping", "t": T0 + 1000 * 1000})
    if finished:
        recs.append({"k": "end", "t": T0 + 1000 * 1001})
    return recs


def end(name: str, pending: Any = 0, dead: Any = 0, lag: Any = 0) -> dict[str, Any]:
    return {"k": "durable-end", "t": T0 + 1000 * 1002, "member": name, "group": f"soak-{name}",
            "pending": pending, "lag": lag, "dead": dead, "len": 5}


def drun(pub: list[dict[str, Any]], durs: dict[str, list[dict[str, Any]]],
         ends: list[dict[str, Any]] | None = None,
         subs: dict[str, list[dict[str, Any]]] | None = None) -> tuple[list[str], list[str]]:
    all_ids = [r["id"] for r in pub if r["k"] == "send"]
    subs = subs if subs is not None else {"py": subscriber(all_ids)}
    return check.check(pub, subs, [], [], durs, ends if ends is not None else [end(n) for n in durs])


def test_a_clean_durable_run_passes_and_is_in_the_summary() -> None:
    problems, lines = drun(persistent_publisher(10), {"py": member([0, 2, 4, 6, 8]), "c": member([0, 2, 4, 6, 8])})
    assert problems == []
    text = "\n".join(lines)
    assert "dur-py" in text and "dur-c" in text and "pending" in text and "dead" in text


def test_a_persistent_success_never_delivered_to_the_group_is_caught_even_in_a_gap() -> None:
    gap = {"k": "state", "type": "gap", "connection": "subscriber", "t": T0 + 6000,
           "from": iso(T0 + 4000), "to": iso(T0 + 6000), "duration": 2000}
    recs = member([0, 2, 6, 8])
    recs.insert(1, gap)
    problems, _ = drun(persistent_publisher(10), {"py": recs})
    assert len(problems) == 1 and problems[0].startswith("dur-py:") and "never delivered to the group" in problems[0]


def test_duplicates_are_allowed_counted_and_printed() -> None:
    problems, lines = drun(persistent_publisher(6), {"py": member([0, 2, 2, 4, 4, 4], {4: 2})})
    assert problems == []
    text = "\n".join(lines)
    assert "2 events delivered more than once (3 extra deliveries" in text
    row = next(line for line in lines if line.startswith("dur-py"))
    assert row.split()[1:7] == ["3", "3", "0", "2", "0", "3"]  # owed got LOST dup bad redelivered


def test_pending_at_the_end_is_caught() -> None:
    problems, _ = drun(persistent_publisher(4), {"py": member([0, 2])}, [end("py", pending=3)])
    assert len(problems) == 1 and "3 pending" in problems[0] and "XPENDING" in problems[0]
    problems, _ = drun(persistent_publisher(4), {"py": member([0, 2])}, [end("py", pending=None)])
    assert len(problems) == 1 and "pending" in problems[0]


def test_dead_letters_are_caught() -> None:
    problems, _ = drun(persistent_publisher(4), {"py": member([0, 2])}, [end("py", dead=1)])
    assert len(problems) == 1 and "1 dead letters" in problems[0]


def test_a_missing_final_reading_is_caught() -> None:
    problems, _ = drun(persistent_publisher(4), {"py": member([0, 2])}, [end("c")])
    assert len(problems) == 1 and "no final XPENDING" in problems[0]


def test_a_member_that_did_not_finish_is_caught() -> None:
    problems, _ = drun(persistent_publisher(4), {"py": member([0, 2], finished=False)})
    assert len(problems) == 1 and "did not finish" in problems[0]


def test_a_group_delivery_of_a_non_persistent_event_is_caught() -> None:
    problems, _ = drun(persistent_publisher(4), {"py": member([0, 1, 2])})
    assert len(problems) == 1 and "not published persistent" in problems[0]


def test_a_group_delivery_after_failing_before_sending_is_caught_but_unknown_may_go_either_way() -> None:
    pub = persistent_publisher(6, fail={2: "TIMEOUT", 4: "OUTCOME_UNKNOWN"})
    ids_live = [0, 1, 3, 5]
    problems, _ = drun(pub, {"py": member([0, 2, 4])}, subs={"py": subscriber(ids_live)})
    assert len(problems) == 1 and "reported failed before sending" in problems[0] and "TIMEOUT" in problems[0]
    assert drun(pub, {"py": member([0, 4])}, subs={"py": subscriber(ids_live)})[0] == []
    assert drun(pub, {"py": member([0])}, subs={"py": subscriber(ids_live)})[0] == []


def test_a_stored_event_whose_live_copy_reached_nobody_is_not_owed_to_plain_subscribers() -> None:
    pub = persistent_publisher(6, live_lost={2})
    problems, _ = drun(pub, {"py": member([0, 2, 4])}, subs={"py": subscriber([0, 1, 3, 4, 5])})
    assert problems == []
    # ... but a plain subscriber's miss of a persistent event that did reach subscribers is lost.
    pub = persistent_publisher(6)
    problems, _ = drun(pub, {"py": member([0, 2, 4])}, subs={"py": subscriber([0, 1, 3, 4, 5])})
    assert len(problems) == 1 and problems[0].startswith("py:") and "never delivered" in problems[0]


def test_main_reads_durable_ledgers_and_expects_them(tmp_path: Path, capsys: Any) -> None:
    def dump(name: str, recs: list[dict[str, Any]]) -> None:
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in recs))

    dump("pub.ndjson", persistent_publisher(4))
    dump("sub-py.ndjson", subscriber([0, 1, 2, 3]))
    dump("dur-py.ndjson", member([0, 2]))
    dump("durable.ndjson", [end("py")])
    assert check.main(["check.py", str(tmp_path), "--expect", "py", "--durable", "py"]) == 0
    assert "dur-py" in capsys.readouterr().out
    assert check.main(["check.py", str(tmp_path), "--expect", "py", "--durable", "py,c"]) == 1
    assert "dur-c: no ledger" in capsys.readouterr().out
    dump("durable.ndjson", [end("py", pending=2)])
    assert check.main(["check.py", str(tmp_path), "--durable", "py"]) == 1
    assert "2 pending" in capsys.readouterr().out
