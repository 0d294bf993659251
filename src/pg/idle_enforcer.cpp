// Idle enforcement, one pass:
//   PostgreSQL's backend status (what pg_stat_activity shows) -> a snapshot per client
//   session -> its limits (rule from its place, or the defaults) -> core deadline ->
//   for the due ones: a fresh snapshot, the core re-check, SIGTERM -> log, event, counter.
// Exempt sessions and sessions without a place (not admitted through pg_connguard) are
// never ended. In monitor mode and dry run each would-be ending is recorded once per
// idle period.
#include "pg/idle_enforcer.h"

#include <algorithm>

#include "core/deadline.h"
#include "pg/activity.h"
#include "pg/client_sessions.h"
#include "pg/settings.h"

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
    bool would;  // monitor mode or dry run: record, end nothing
    core::Deadline deadline;
    core::Limits limits;
    int slot;
    int rule;  // index into the copied rules, -1 for the defaults
    char application[core::kMaxNameBytes + 1];  // as it is now (the snapshot is cleared before acting)
};

// What the worker already did (or recorded as would-do) for a session in its current
// state, so it neither signals twice nor logs a would_terminate every pass. A would-do
// does not cover a real ending: once monitor mode or the dry run ends, a session already
// past its limit is ended at the next pass.
struct Handled {
    std::int32_t pid;
    std::int64_t state_since;
    bool would;
};

struct Work {
    core::CompiledRule* rules = nullptr;
    int rule_count = 0;
    core::SessionSlot* slots = nullptr;
    int* slot_by_pid = nullptr;  // slot indices sorted by pid
    int slot_by_pid_count = 0;
    Candidate* due = nullptr;
    int due_count = 0;
    Handled* handled = nullptr;
    int handled_count = 0;
    MemoryContext scratch = nullptr;
};

Work work;

void allocate_work(SharedState* state) {
    if (work.rules != nullptr) return;
    auto alloc = [](Size size) { return MemoryContextAllocZero(TopMemoryContext, size); };
    work.rules = static_cast<core::CompiledRule*>(alloc(sizeof(core::CompiledRule) * state->rule_capacity));
    work.slots = static_cast<core::SessionSlot*>(alloc(sizeof(core::SessionSlot) * state->slot_count));
    work.slot_by_pid = static_cast<int*>(alloc(sizeof(int) * state->slot_count));
    work.due = static_cast<Candidate*>(alloc(sizeof(Candidate) * state->slot_count));
    work.handled = static_cast<Handled*>(alloc(sizeof(Handled) * state->slot_count));
    work.scratch = AllocSetContextCreate(TopMemoryContext, "pg_connguard idle enforcement", ALLOCSET_SMALL_SIZES);
}

void copy_shared(SharedState* state) {
    LWLockAcquire(state->lock, LW_SHARED);
    work.rule_count = state->rule_count;
    memcpy(static_cast<void*>(work.rules), state->rules, sizeof(core::CompiledRule) * state->rule_count);
    memcpy(static_cast<void*>(work.slots), state->slots, sizeof(core::SessionSlot) * state->slot_count);
    LWLockRelease(state->lock);
    work.slot_by_pid_count = 0;
    for (int i = 0; i < state->slot_count; ++i) {
        if (work.slots[i].in_use) work.slot_by_pid[work.slot_by_pid_count++] = i;
    }
    std::sort(work.slot_by_pid, work.slot_by_pid + work.slot_by_pid_count,
              [](int a, int b) { return work.slots[a].pid < work.slots[b].pid; });
}

int slot_of(int pid) {
    const int* begin = work.slot_by_pid;
    const int* end = begin + work.slot_by_pid_count;
    const int* found = std::lower_bound(begin, end, pid, [](int slot, int p) { return work.slots[slot].pid < p; });
    return (found != end && work.slots[*found].pid == pid) ? *found : -1;
}

int rule_named(const char* name) {
    if (name[0] == '\0') return -1;
    for (int i = 0; i < work.rule_count; ++i) {
        if (strcmp(work.rules[i].rule_name, name) == 0) return i;
    }
    return -1;
}

core::SessionState state_of(BackendState state) {
    switch (state) {
        case STATE_IDLE: return core::SessionState::kIdle;
        case STATE_IDLEINTRANSACTION: return core::SessionState::kIdleInTransaction;
        case STATE_IDLEINTRANSACTION_ABORTED: return core::SessionState::kIdleInTransactionAborted;
        case STATE_RUNNING:
        case STATE_FASTPATH: return core::SessionState::kActive;
        default: return core::SessionState::kOther;
    }
}

core::LimitDefaults defaults_now() {
    constexpr std::int64_t kMs = 1000, kS = 1000 * 1000;
    return {setting_idle_timeout_ms * kMs, setting_idle_in_transaction_timeout_ms * kMs,
            setting_idle_blocker_timeout_ms * kMs, setting_max_session_age_s * kS};
}

bool already_handled(const core::SessionSnapshot& s, bool would) {
    for (int i = 0; i < work.handled_count; ++i) {
        const Handled& h = work.handled[i];
        if (h.pid == s.pid && h.state_since == s.state_since && (!h.would || would)) return true;
    }
    return false;
}

void remember_handled(const core::SessionSnapshot& s, bool would, int capacity) {
    if (work.handled_count == capacity) {  // forget the oldest half; they have long gone
        memmove(work.handled, work.handled + capacity / 2, sizeof(Handled) * (capacity - capacity / 2));
        work.handled_count = capacity - capacity / 2;
    }
    work.handled[work.handled_count++] = Handled{s.pid, s.state_since, would};
}

bool is_blocker(const std::int32_t* blockers, int count, int pid) {
    return std::find(blockers, blockers + count, pid) != blockers + count;
}

bool exempt(const core::SessionSlot& slot, int rule, List* exempt_roles) {
    if (rule >= 0 && work.rules[rule].mode == core::Mode::kExempt) return true;
    return (slot.superuser && setting_exempt_superusers) || role_in(exempt_roles, slot.role);
}

const char* state_words(core::SessionState state) {
    switch (state) {
        case core::SessionState::kIdle: return "idle";
        case core::SessionState::kIdleInTransaction: return "idle in transaction";
        case core::SessionState::kIdleInTransactionAborted: return "idle in transaction (aborted)";
        default: return "active";
    }
}

// Re-reads backend status and ends (or records) each due session still due.
void act_on_due(SharedState* state) {
    pgstat_clear_backend_activity_snapshot();
    const TimestampTz now = GetCurrentTimestamp();
    const int backends = pgstat_fetch_stat_numbackends();
    for (int d = 0; d < work.due_count; ++d) {
        const Candidate& c = work.due[d];
        core::SessionSnapshot seen;
        for (int i = 1; i <= backends; ++i) {
            const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
            if (entry != nullptr && entry->backendStatus.st_procpid == c.snapshot.pid) {
                seen.pid = entry->backendStatus.st_procpid;
                seen.state = state_of(entry->backendStatus.st_state);
                seen.state_since = entry->backendStatus.st_state_start_timestamp;
                seen.backend_start = entry->backendStatus.st_proc_start_timestamp;
                seen.blocking = c.snapshot.blocking;
                break;
            }
        }
        if (!core::still_due(c.snapshot, seen, c.limits, now)) continue;  // it moved on: leave it alone

        const core::SessionSlot& slot = work.slots[c.slot];
        const char* rule_name = c.rule >= 0 ? work.rules[c.rule].rule_name : core::kDefaultRuleName;
        const bool would = c.would;
        const double seconds = static_cast<double>(now - c.snapshot.state_since) / 1e6;
        const double limit = static_cast<double>(c.deadline.limit_us) / 1e6;
        char detail[192];
        snprintf(detail, sizeof detail, "%s for %.3f s; %s limit %.3f s (rule \"%s\")", state_words(seen.state),
                 seconds, core::event_reason_name(c.deadline.reason), limit, rule_name);

        const core::SessionKey key = core::key_of(slot, c.application);
        remember_handled(c.snapshot, would, state->slot_count);
        if (!would && BackendPidGetProc(c.snapshot.pid) == nullptr) continue;
        record_event(state, would ? core::EventKind::kWouldTerminate : core::EventKind::kTerminated,
                     c.deadline.reason, c.snapshot.pid, key, rule_name, detail);
        count_termination(state, rule_name, c.deadline.reason, would);
        ereport(LOG, (errmsg("pg_connguard: %s session %d (%s): %s", would ? "would end" : "ending", c.snapshot.pid,
                             core::event_reason_name(c.deadline.reason), detail)));
        if (!would) (void)kill(c.snapshot.pid, SIGTERM);
    }
}

}  // namespace

TimestampTz enforce_idle_limits(SharedState* state) {
    const TimestampTz now = GetCurrentTimestamp();
    if (!setting_enabled) return now + kMaxScanUs;
    allocate_work(state);
    copy_shared(state);
    const core::LimitDefaults defaults = defaults_now();
    TimestampTz next = now + core::scan_period_us(work.rules, work.rule_count, defaults, kMinScanUs, kMaxScanUs);
    const bool any_default = defaults.idle_timeout_us > 0 || defaults.idle_in_transaction_timeout_us > 0 ||
                             defaults.idle_blocker_timeout_us > 0 || defaults.max_session_age_us > 0;
    if (work.rule_count == 0 && !any_default) return next;  // no limit anywhere: nothing to read

    MemoryContext caller = MemoryContextSwitchTo(work.scratch);
    auto* blockers = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * state->slot_count));
    int blocker_count = 0;
    bool blockers_known = false;
    List* exempt_roles = exempt_role_names();
    work.due_count = 0;

    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || entry->backendStatus.st_backendType != B_BACKEND ||
            CONNGUARD_STILL_STARTING(&entry->backendStatus)) {
            continue;
        }
        const PgBackendStatus& status = entry->backendStatus;
        const int slot = slot_of(status.st_procpid);
        if (slot < 0) continue;
        const int rule = rule_named(work.slots[slot].rule_name);
        if (exempt(work.slots[slot], rule, exempt_roles)) continue;

        Candidate c;
        c.slot = slot;
        c.rule = rule;
        strlcpy(c.application, status.st_appname != nullptr ? status.st_appname : "", sizeof c.application);
        c.limits = core::limits_for(rule >= 0 ? &work.rules[rule] : nullptr, defaults);
        c.snapshot.pid = status.st_procpid;
        c.snapshot.state = state_of(status.st_state);
        c.snapshot.state_since = status.st_state_start_timestamp;
        c.snapshot.backend_start = status.st_proc_start_timestamp;
        const bool in_transaction = c.snapshot.state == core::SessionState::kIdleInTransaction ||
                                    c.snapshot.state == core::SessionState::kIdleInTransactionAborted;
        if (in_transaction && c.limits.idle_blocker_us > 0) {
            if (!blockers_known) {
                blocker_count = collect_blockers(blockers, state->slot_count);
                blockers_known = true;
            }
            c.snapshot.blocking = is_blocker(blockers, blocker_count, c.snapshot.pid);
            if (!c.snapshot.blocking) {
                // It may start blocking someone at any moment: look again at its blocker
                // deadline, and every 100 ms after it.
                next = Min(next, Max(c.snapshot.state_since + c.limits.idle_blocker_us, now + kBlockerPollUs));
            }
        }
        c.deadline = core::deadline_for(c.snapshot, c.limits);
        next = Min(next, core::next_look_at(c.snapshot, c.limits, now, kAgedPollUs));
        c.would = setting_dry_run || (rule >= 0 && work.rules[rule].mode == core::Mode::kMonitor);
        if (c.deadline.at == core::kNever || already_handled(c.snapshot, c.would)) continue;
        if (c.deadline.at <= now) {
            work.due[work.due_count++] = c;
        } else {
            next = Min(next, c.deadline.at);
        }
    }
    if (work.due_count > 0) act_on_due(state);
    pgstat_clear_backend_activity_snapshot();
    MemoryContextSwitchTo(caller);
    MemoryContextReset(work.scratch);
    return next;
}

}  // namespace connguard::pg
