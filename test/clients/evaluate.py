#!/usr/bin/python3
"""Reads the JSON lines of the client runs (stdin) and checks them: with recommended
settings no client saw an error; every scenario did what it is about (idle sessions were
ended when the pool kept them past the limit, the leaked transaction was rolled back and the
committed row kept, the leaking code saw the ending, no more sessions than the cap at any
sampled moment, pgjdbc's nameless logins refused as logins, never ended for a rename).
Prints the table the README shows and exits non-zero on any failed check."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
problems = []
table = {}
for r in rows:
    key = (r["client"], r["scenario"])
    where = f"{r['client']} {r['scenario']} ({r['settings']})"
    if "harness_error" in r:
        problems.append(f"{where}: {r['harness_error']}")
        continue
    recommended = r["settings"] == "recommended"
    first = r.get("first_error") or {}
    seen = f"{r['errors']}" + (f" ({first.get('sqlstate') or 'no SQLSTATE'})" if r["errors"] else "")
    table.setdefault(key, {})[r["settings"]] = seen
    if recommended and r["errors"] != 0:
        problems.append(f"{where}: the application saw {r['errors']} errors, first {first}")
    if r["scenario"] == "idle" and not recommended and r.get("sessions_ended_idle", 0) < 1:
        problems.append(f"{where}: no idle session was ended, the scenario proved nothing")
    if r["scenario"] == "leak":
        if not (r.get("committed_row_kept") and r.get("leaked_row_rolled_back")):
            problems.append(f"{where}: committed kept {r.get('committed_row_kept')}, leaked rolled back {r.get('leaked_row_rolled_back')}")
        saw = r.get("leaker_saw")
        if not saw:
            problems.append(f"{where}: the leaking code saw no error")
        elif saw.get("sqlstate") not in (None, "25P03"):
            problems.append(f"{where}: the leaking code saw SQLSTATE {saw.get('sqlstate')}, not 25P03")
        table[key].setdefault("leaker", (saw or {}).get("sqlstate") or "no SQLSTATE")
    if r["scenario"] == "cap":
        if r.get("peak_sessions", 99) > r.get("cap", 3) or r.get("peak_sessions", 0) < 0:
            problems.append(f"{where}: {r.get('peak_sessions')} sessions at once under a cap of {r.get('cap')}")
        if r.get("terminated_cap_events", 0) != 0:
            problems.append(f"{where}: {r['terminated_cap_events']} sessions ended for the cap (renamed after login)")
        if r["client"] == "hikari" and not recommended and r.get("rejected_events", 0) < 1:
            problems.append(f"{where}: no 'rejected' event: the pool's extra logins were not refused as logins")
        table[key]["peak"] = str(r.get("peak_sessions"))

print(f"{'client':<14} {'scenario':<6} {'recommended':<12} {'defaults':<24} notes")
for (client, scenario), cells in table.items():
    note = ""
    if scenario == "leak":
        note = f"leaking code saw {cells.get('leaker')}"
    if scenario == "cap":
        note = f"peak {cells.get('peak')} of 3"
    print(f"{client:<14} {scenario:<6} {cells.get('recommended', '-'):<12} {cells.get('defaults', '-'):<24} {note}")
for p in problems:
    print("FAILED:", p)
print(f"clients: {len(table)} client-scenarios, {len(problems)} problems")
sys.exit(1 if problems else 0)
