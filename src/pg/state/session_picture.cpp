#include "pg/state/session_picture.h"

#include <algorithm>

#include "pg/state/settings.h"

extern "C" {
#include "pgstat.h"
#include "utils/memutils.h"
}

namespace connguard::pg {

SessionPicture* new_session_picture(SharedState* state, MemoryContext context) {
    auto* picture = static_cast<SessionPicture*>(MemoryContextAllocZero(context, sizeof(SessionPicture)));
    picture->rules = static_cast<core::CompiledRule*>(
        MemoryContextAlloc(context, sizeof(core::CompiledRule) * state->rule_capacity));
    picture->slots =
        static_cast<core::SessionSlot*>(MemoryContextAlloc(context, sizeof(core::SessionSlot) * state->slot_count));
    picture->by_pid = static_cast<int*>(MemoryContextAlloc(context, sizeof(int) * state->slot_count));
    return picture;
}

void take_session_picture(SharedState* state, SessionPicture* picture) {
    LWLockAcquire(state->lock, LW_SHARED);
    picture->rule_count = state->rule_count;
    picture->slot_count = state->slot_count;
    memcpy(static_cast<void*>(picture->rules), state->rules, sizeof(core::CompiledRule) * state->rule_count);
    memcpy(static_cast<void*>(picture->slots), state->slots, sizeof(core::SessionSlot) * state->slot_count);
    LWLockRelease(state->lock);
    picture->placed = 0;
    for (int i = 0; i < picture->slot_count; ++i) {
        if (picture->slots[i].in_use) picture->by_pid[picture->placed++] = i;
    }
    const core::SessionSlot* slots = picture->slots;
    std::sort(picture->by_pid, picture->by_pid + picture->placed,
              [slots](int a, int b) { return slots[a].pid < slots[b].pid; });
}

int place_of(const SessionPicture& picture, int pid) {
    const int* begin = picture.by_pid;
    const int* end = begin + picture.placed;
    const core::SessionSlot* slots = picture.slots;
    const int* found = std::lower_bound(begin, end, pid, [slots](int slot, int p) { return slots[slot].pid < p; });
    return (found != end && slots[*found].pid == pid) ? *found : -1;
}

core::SessionSnapshot snapshot_of(const PgBackendStatus& status) {
    core::SessionSnapshot s;
    s.pid = status.st_procpid;
    switch (status.st_state) {
        case STATE_IDLE: s.state = core::SessionState::kIdle; break;
        case STATE_IDLEINTRANSACTION: s.state = core::SessionState::kIdleInTransaction; break;
        case STATE_IDLEINTRANSACTION_ABORTED: s.state = core::SessionState::kIdleInTransactionAborted; break;
        case STATE_RUNNING:
        case STATE_FASTPATH: s.state = core::SessionState::kActive; break;
        default: s.state = core::SessionState::kOther; break;
    }
    s.state_since = status.st_state_start_timestamp;
    s.backend_start = status.st_proc_start_timestamp;
    s.xact_start = status.st_xact_start_timestamp;
    return s;
}

const PgBackendStatus* backend_status_of(int pid) {
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry != nullptr && entry->backendStatus.st_procpid == pid) return &entry->backendStatus;
    }
    return nullptr;
}

bool is_started_client(const PgBackendStatus& status) {
    return status.st_backendType == B_BACKEND && !CONNGUARD_STILL_STARTING(&status);
}

const char* state_name(BackendState state) {
    switch (state) {
        case STATE_IDLE: return "idle";
        case STATE_RUNNING: return "active";
        case STATE_IDLEINTRANSACTION: return "idle in transaction";
        case STATE_FASTPATH: return "fastpath function call";
        case STATE_IDLEINTRANSACTION_ABORTED: return "idle in transaction (aborted)";
        case STATE_DISABLED: return "disabled";
        default: return "starting";
    }
}

core::SessionPolicy session_policy(const SessionPicture& picture) {
    constexpr std::int64_t kMs = 1000, kS = 1000 * 1000;
    core::SessionPolicy policy;
    policy.rules = picture.rules;
    policy.rule_count = static_cast<std::size_t>(picture.rule_count);
    policy.defaults = {setting_idle_timeout_ms * kMs, setting_idle_in_transaction_timeout_ms * kMs,
                       setting_idle_blocker_timeout_ms * kMs, setting_max_session_age_s * kS,
                       setting_max_transaction_time_ms * kMs};
    policy.exempt_superusers = setting_exempt_superusers;
    policy.dry_run = setting_dry_run;
    policy.default_cap = setting_max_connections_per_application;
    return policy;
}

core::SessionFacts session_facts(const SessionPicture& picture, int place, const core::SessionSnapshot& snapshot,
                                 List* exempt_roles) {
    core::SessionFacts facts;
    facts.snapshot = snapshot;
    if (place < 0) return facts;
    const core::SessionSlot& slot = picture.slots[place];
    facts.has_place = true;
    facts.rule_name = slot.rule_name;
    facts.superuser = slot.superuser;
    facts.role_listed_exempt = role_in(exempt_roles, slot.role);
    return facts;
}

}  // namespace connguard::pg
