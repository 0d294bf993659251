// Idle enforcement, one pass:
//   PostgreSQL's backend status (what pg_stat_activity shows) -> a snapshot per client
//   session -> its limits (rule from its place, or the defaults) -> core deadline ->
//   for the due ones: a fresh snapshot, the core re-check, SIGTERM -> log, event, counter.
// Exempt sessions and sessions without a place (not admitted through pg_connguard) are
// never ended. In monitor mode and dry run each would-be ending is recorded once per
// idle period, or for max_transaction_time once per transaction. Under action 'cancel' a
// transaction running a statement past max_transaction_time gets SIGINT instead of SIGTERM
// and is remembered as cancelled, so that its aborted remainder is not acted on again.
#include "pg/enforcement/idle_enforcer.h"

#include <algorithm>

#include "core/deadline.h"
#include "pg/state/activity.h"
#include "pg/state/client_sessions.h"
#include "pg/state/ending_notice.h"
#include "pg/state/session_picture.h"
#include "pg/state/settings.h"

extern "C" {
#include <signal.h>

#include "pgstat.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/memutils.h"
}

namespace connguard::pg {
namespace {

constexpr std::int64_t kMinScanUs = 10 * 1000;           // never look more often than every 10 ms
constexpr std::int64_t kMaxScanUs = 60 * 1000 * 1000;    // nor less often than every minute
constexpr std::int64_t kBlockerPollUs = 100 * 1000;      // while a session may turn into a blocker
constexpr std::int64_t kAgedPollUs = kMinScanUs;         // while a session past max_session_age is busy

struct Candidate {
    core::SessionSnapshot snapshot;
    core::SessionJudgement judged;  // its rule points into the picture's rules
    int place;
    char application[core::kMaxNameBytes + 1];  // as it is now (the snapshot is cleared before acting)
};

// What the worker already did (or recorded as would-do) for a session in its current
// state, so it neither signals twice nor logs a would_terminate every pass. A would-do
// does not cover a real ending: once monitor mode or the dry run ends, a session already
// past its limit is ended at the next pass. An action for max_transaction_time is kept by
// transaction (its start), the others by state (since when).
struct Handled {
    std::int32_t pid;
    std::int64_t since;  // state_since, or xact_start for max_transaction_time
    bool transaction;
    bool would;
    bool cancelled;  // the statement was cancelled, the session not ended
};

// The worker's own memory, allocated once (TopMemoryContext): one pass reuses it.
struct EnforcerMemory {
    SessionPicture* picture = nullptr;
    Candidate* due = nullptr;
    int due_count = 0;
    Handled* handled = nullptr;
    int handled_count = 0;
    MemoryContext scratch = nullptr;
};

EnforcerMemory memory;

void allocate_memory(SharedState* state) {
    if (memory.picture != nullptr) return;
    memory.picture = new_session_picture(state, TopMemoryContext);
    memory.due = static_cast<Candidate*>(MemoryContextAllocZero(TopMemoryContext, sizeof(Candidate) * state->slot_count));
    memory.handled = static_cast<Handled*>(MemoryContextAllocZero(TopMemoryContext, sizeof(Handled) * state->slot_count));
    memory.scratch = AllocSetContextCreate(TopMemoryContext, "pg_connguard idle enforcement", ALLOCSET_SMALL_SIZES);
}

bool is_transaction_time(const core::Deadline& deadline) {
    return deadline.reason == core::EventReason::kTransactionTime;
}

bool already_handled(const core::SessionSnapshot& s, const core::Deadline& deadline, bool would) {
    const bool transaction = is_transaction_time(deadline);
    const std::int64_t since = transaction ? s.xact_start : s.state_since;
    for (int i = 0; i < memory.handled_count; ++i) {
        const Handled& h = memory.handled[i];
        if (h.pid == s.pid && h.transaction == transaction && h.since == since && (!h.would || would)) return true;
    }
    return false;
}

// Whether this transaction's statement was already cancelled for its age.
bool transaction_cancelled(const core::SessionSnapshot& s) {
    if (s.xact_start == 0) return false;
    for (int i = 0; i < memory.handled_count; ++i) {
        const Handled& h = memory.handled[i];
        if (h.pid == s.pid && h.transaction && h.cancelled && h.since == s.xact_start) return true;
    }
    return false;
}

void remember_handled(const core::SessionSnapshot& s, const core::Deadline& deadline, bool would, int capacity) {
    if (memory.handled_count == capacity) {  // forget the oldest half; they have long gone
        memmove(memory.handled, memory.handled + capacity / 2, sizeof(Handled) * (capacity - capacity / 2));
        memory.handled_count = capacity - capacity / 2;
    }
    const bool transaction = is_transaction_time(deadline);
    memory.handled[memory.handled_count++] =
        Handled{s.pid, transaction ? s.xact_start : s.state_since, transaction, would, deadline.cancel && !would};
}

bool is_blocker(const std::int32_t* blockers, int count, int pid) {
    return std::find(blockers, blockers + count, pid) != blockers + count;
}

// Re-reads backend status and ends (or records) each due session still due.
void act_on_due(SharedState* state) {
    pgstat_clear_backend_activity_snapshot();
    const TimestampTz now = GetCurrentTimestamp();
    for (int d = 0; d < memory.due_count; ++d) {
        const Candidate& c = memory.due[d];
        const PgBackendStatus* status = backend_status_of(c.snapshot.pid);
        core::SessionSnapshot seen;
        if (status != nullptr) {
            seen = snapshot_of(*status);
            seen.blocking = c.snapshot.blocking;
            seen.transaction_cancelled = c.snapshot.transaction_cancelled;
        }
        if (!core::still_due(c.snapshot, seen, c.judged.limits, now)) continue;  // it moved on: leave it alone

        const core::SessionSlot& slot = memory.picture->slots[c.place];
        const char* rule_name = c.judged.rule_name;
        const bool would = c.judged.would;
        const core::Deadline deadline = core::deadline_for(seen, c.judged.limits);  // what is due now
        const std::int64_t measured = now - (is_transaction_time(deadline) ? seen.xact_start : seen.state_since);
        char detail[192];
        core::describe_ending(seen.state, measured, deadline, rule_name, detail, sizeof detail);

        const core::SessionKey key = core::key_of(slot, c.application);
        remember_handled(seen, deadline, would, state->slot_count);
        if (!would && BackendPidGetProc(c.snapshot.pid) == nullptr) continue;
        const core::EventKind kind = deadline.cancel ? (would ? core::EventKind::kWouldCancel : core::EventKind::kCancelled)
                                                     : (would ? core::EventKind::kWouldTerminate : core::EventKind::kTerminated);
        record_event(state, kind, deadline.reason, c.snapshot.pid, key, rule_name, detail, measured);
        count_termination(state, rule_name, deadline.reason, would, deadline.cancel);
        ereport(LOG, (errmsg("pg_connguard: %s session %d (%s): %s",
                             deadline.cancel ? (would ? "would cancel the statement of" : "cancelling the statement of")
                                             : (would ? "would end" : "ending"),
                             c.snapshot.pid, core::event_reason_name(deadline.reason), detail)));
        if (would) continue;
        char client_detail[192];
        core::client_ending_detail(seen.state, measured, deadline, rule_name, client_detail, sizeof client_detail);
        post_ending_notice(state, c.place, c.snapshot.pid, deadline.reason, client_detail, deadline.cancel);
        (void)kill(c.snapshot.pid, deadline.cancel ? SIGINT : SIGTERM);
    }
}

}  // namespace

TimestampTz enforce_idle_limits(SharedState* state) {
    const TimestampTz now = GetCurrentTimestamp();
    if (!setting_enabled) return now + kMaxScanUs;
    allocate_memory(state);
    SessionPicture& picture = *memory.picture;
    take_session_picture(state, &picture);
    const core::SessionPolicy policy = session_policy(picture);
    const core::LimitDefaults& defaults = policy.defaults;
    TimestampTz next = now + core::scan_period_us(picture.rules, picture.rule_count, defaults, kMinScanUs, kMaxScanUs);
    const bool any_default = defaults.idle_timeout_us > 0 || defaults.idle_in_transaction_timeout_us > 0 ||
                             defaults.idle_blocker_timeout_us > 0 || defaults.max_session_age_us > 0 ||
                             defaults.max_transaction_time_us > 0;
    if (picture.rule_count == 0 && !any_default) return next;  // no limit anywhere: nothing to read

    MemoryContext caller = MemoryContextSwitchTo(memory.scratch);
    auto* blockers = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * state->slot_count));
    int blocker_count = 0;
    bool blockers_known = false;
    List* exempt_roles = exempt_role_names();
    memory.due_count = 0;

    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || !is_started_client(entry->backendStatus)) continue;
        const PgBackendStatus& status = entry->backendStatus;
        const int place = place_of(picture, status.st_procpid);
        if (place < 0) continue;  // not admitted through pg_connguard: never ended

        Candidate c;
        c.place = place;
        c.snapshot = snapshot_of(status);
        c.snapshot.transaction_cancelled = transaction_cancelled(c.snapshot);
        core::SessionFacts facts = session_facts(picture, place, c.snapshot, exempt_roles);
        c.judged = core::judge_session(facts, policy);
        if (c.judged.exempt) continue;
        const bool in_transaction = c.snapshot.state == core::SessionState::kIdleInTransaction ||
                                    c.snapshot.state == core::SessionState::kIdleInTransactionAborted;
        if (in_transaction && c.judged.limits.idle_blocker_us > 0) {
            if (!blockers_known) {
                blocker_count = collect_blockers(blockers, state->slot_count);
                blockers_known = true;
            }
            c.snapshot.blocking = facts.snapshot.blocking = is_blocker(blockers, blocker_count, c.snapshot.pid);
            c.judged = core::judge_session(facts, policy);
            if (!c.snapshot.blocking) {
                // It may start blocking someone at any moment: look again at its blocker
                // deadline, and every 100 ms after it.
                next = Min(next, Max(c.snapshot.state_since + c.judged.limits.idle_blocker_us, now + kBlockerPollUs));
            }
        }
        next = Min(next, core::next_look_at(c.snapshot, c.judged.limits, now, kAgedPollUs));
        if (c.judged.deadline.at == core::kNever || already_handled(c.snapshot, c.judged.deadline, c.judged.would)) {
            continue;
        }
        if (c.judged.deadline.at <= now) {
            strlcpy(c.application, status.st_appname != nullptr ? status.st_appname : "", sizeof c.application);
            memory.due[memory.due_count++] = c;
        } else {
            next = Min(next, c.judged.deadline.at);
        }
    }
    if (memory.due_count > 0) act_on_due(state);
    pgstat_clear_backend_activity_snapshot();
    MemoryContextSwitchTo(caller);
    MemoryContextReset(memory.scratch);
    return next;
}

}  // namespace connguard::pg
