#!/usr/bin/python3
"""Reads the JSON lines of the client runs (stdin) and checks them: with recommended
settings no client saw an error; every scenario did what it is about (idle sessions were
ended when the pool kept them past the limit, the leaked transaction was rolled back and the
committed row kept, the leaking code saw the ending, no more sessions than the cap at any
sampled moment, pgjdbc's nameless logins refused as logins, never ended for a rename; under
max_active no error while queued, never more running than the limit, 53000 past active_wait
and the pool serving again after it; at a rule's limits 25P04 past max_transaction_time, 57014
under action = 'cancel' and past a rule's statement_timeout, and the pool serving after each).
Prints the table the README shows and exits non-zero on any failed check."""
import json
import sys

# What the application code can read, per client and scenario: the SQLSTATE (None where the
# driver exposes none) and words its message must hold. psycopg2 (SQLAlchemy, Django and
# psycopg2's pool here) reports an ended session only as a closed connection; psycopg 3 gives
# the server's message and DETAIL but no SQLSTATE; libpq-based drivers give no SQLSTATE for a
# refused login, only its message.
QUEUE_TIMEOUT = ("53000", ["too many running transactions for rule"])
PSYCOPG2 = {"idle": (None, ["server closed the connection unexpectedly"]),
            "leak": (None, ["server closed the connection unexpectedly"]),
            "cap": (None, ["FATAL: too many connections for rule", "DETAIL: rule"]),
            "active": QUEUE_TIMEOUT}
EXPECTED = {
    "sqlalchemy": PSYCOPG2, "django": PSYCOPG2, "psycopg2_pool": PSYCOPG2,
    "psycopg_pool": {"idle": (None, ["terminating connection due to idle-session timeout", "DETAIL: pg_connguard rule"]),
                     "leak": (None, ["terminating connection due to idle-in-transaction timeout", "DETAIL: pg_connguard rule"]),
                     "cap": (None, ["too many connections for rule"]), "active": QUEUE_TIMEOUT},
    "node_pg": {"idle": ("57P05", ["terminating connection due to idle-session timeout"]),
                "leak": ("25P03", ["terminating connection due to idle-in-transaction timeout"]),
                "cap": ("53300", ["too many connections for rule"]), "active": QUEUE_TIMEOUT},
    "hikari": {"idle": ("57P05", ["terminating connection due to idle-session timeout"]),
               "leak": ("25P03", ["terminating connection due to idle-in-transaction timeout"]),
               "cap": ("53300", ["too many connections for rule"]), "active": QUEUE_TIMEOUT},
}


# The limits scenario: what the code reads at each limit. A statement running past
# max_transaction_time gets its session's FATAL as the statement's error: node-postgres and
# pgjdbc with its SQLSTATE 25P04 (the DETAIL apart), psycopg 3 with the server's words and
# DETAIL but no SQLSTATE, psycopg2 only as a closed connection (libpq 14+ leaves the FATAL out
# of the message a failed read returns). A cancel is an ordinary ERROR, with its SQLSTATE in
# every driver.
TRANSACTION_ENDED = {"node_pg": ("25P04", ["terminating connection due to transaction timeout"]),
                     "hikari": ("25P04", ["terminating connection due to transaction timeout"]),
                     "psycopg_pool": (None, ["terminating connection due to transaction timeout",
                                             "DETAIL: pg_connguard rule"])}
LIMITS = {"cancelled": ("57014", ["canceling statement due to transaction timeout"]),
          "statement": ("57014", ["canceling statement due to statement timeout"])}
for client in EXPECTED:
    EXPECTED[client]["limits_ended"] = TRANSACTION_ENDED.get(client, PSYCOPG2["leak"])
    for step, expected in LIMITS.items():
        EXPECTED[client][f"limits_{step}"] = expected


def readable(client, scenario, seen):
    """The problem with what the code read, or None when it is what EXPECTED says."""
    sqlstate, words = EXPECTED[client][scenario]
    if seen.get("sqlstate") != sqlstate:
        return f"SQLSTATE {seen.get('sqlstate')}, expected {sqlstate}"
    missing = [w for w in words if w not in seen.get("message", "")]
    return f"message {seen.get('message')!r} lacks {missing}" if missing else None


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
    if r.get("first_error") and (problem := readable(r["client"], r["scenario"], r["first_error"])):
        problems.append(f"{where}: the first error: {problem}")
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
        elif recommended and (problem := readable(r["client"], "leak", saw)):
            problems.append(f"{where}: the leaking code: {problem}")
        table[key].setdefault("leaker", (saw or {}).get("sqlstate") or "no SQLSTATE")
    if r["scenario"] == "cap":
        if r.get("peak_sessions", 99) > r.get("cap", 3) or r.get("peak_sessions", 0) < 0:
            problems.append(f"{where}: {r.get('peak_sessions')} sessions at once under a cap of {r.get('cap')}")
        if r.get("terminated_cap_events", 0) != 0:
            problems.append(f"{where}: {r['terminated_cap_events']} sessions ended for the cap (renamed after login)")
        if r["client"] == "hikari" and not recommended and r.get("rejected_events", 0) < 1:
            problems.append(f"{where}: no 'rejected' event: the pool's extra logins were not refused as logins")
        table[key]["peak"] = str(r.get("peak_sessions"))

    if r["scenario"] == "active":
        if r["errors"] != 0:
            problems.append(f"{where}: queueing for max_active showed the code {r['errors']} errors, first {first}")
        if not 1 <= r.get("peak_running", 0) <= r.get("max_active", 1):
            problems.append(f"{where}: {r.get('peak_running')} statements ran at once under max_active {r.get('max_active')}")
        if (r.get("active_waits") or 0) < 1:
            problems.append(f"{where}: nothing queued, the scenario proved nothing")
        saw = r.get("timeout_saw")
        if not saw:
            problems.append(f"{where}: the statement queued past active_wait saw no error")
        elif problem := readable(r["client"], "active", saw):
            problems.append(f"{where}: past active_wait: {problem}")
        if r.get("served_after_timeout") != 3:
            problems.append(f"{where}: after the 53000 the pool served {r.get('served_after_timeout')} of 3 statements")
        table[key]["peak"] = str(r.get("peak_running"))
        table[key].setdefault("timeout", (saw or {}).get("sqlstate") or "no SQLSTATE")

    if r["scenario"] == "limits":
        notes = []
        for step in ("ended", *LIMITS):
            saw = r.get(f"{step}_saw")
            if not saw:
                problems.append(f"{where}: the statement at the {step} limit saw no error")
            elif problem := readable(r["client"], f"limits_{step}", saw):
                problems.append(f"{where}: at the {step} limit: {problem}")
            if r.get(f"served_after_{step}") != 3:
                problems.append(f"{where}: after the {step} limit the pool served {r.get(f'served_after_{step}')} of 3")
            notes.append(f"{step} {(saw or {}).get('sqlstate') or 'no SQLSTATE'}")
        if (r.get("terminated_events") or 0) < 1 or (r.get("cancelled_events") or 0) < 1:
            problems.append(f"{where}: events: {r.get('terminated_events')} ended, {r.get('cancelled_events')} cancelled "
                            "for transaction_time (1 or more each expected)")
        table[key].setdefault("limits", ", ".join(notes))

print(f"{'client':<14} {'scenario':<6} {'recommended':<12} {'defaults':<24} notes")
for (client, scenario), cells in table.items():
    note = ""
    if scenario == "leak":
        note = f"leaking code saw {cells.get('leaker')}"
    if scenario == "cap":
        note = f"peak {cells.get('peak')} of 3"
    if scenario == "active":
        note = f"peak {cells.get('peak')} running of 1; past active_wait {cells.get('timeout')}"
    if scenario == "limits":
        note = cells.get("limits")
    print(f"{client:<14} {scenario:<6} {cells.get('recommended', '-'):<12} {cells.get('defaults', '-'):<24} {note}")
for p in problems:
    print("FAILED:", p)
print(f"clients: {len(table)} client-scenarios, {len(problems)} problems")
sys.exit(1 if problems else 0)
