#include "pg/state/history.h"

#include "core/pool_health.h"
#include "pg/state/client_sessions.h"
#include "pg/state/group_figures.h"
#include "pg/state/settings.h"

extern "C" {
#include "utils/backend_status.h"
}

namespace connguard::pg {

TimestampTz sample_history_if_due(SharedState* state) {
    const TimestampTz now = GetCurrentTimestamp();
    const std::int64_t interval = static_cast<std::int64_t>(setting_history_interval_s) * USECS_PER_SEC;

    LWLockAcquire(state->lock, LW_SHARED);
    const TimestampTz last = state->history_written > 0
                                 ? core::ring_newest(state->history, state->history_capacity, state->history_written, 0).time
                                 : 0;
    LWLockRelease(state->lock);
    if (last != 0 && now < last + interval) return last + interval;

    const ClientCounts counts = count_client_sessions();
    pgstat_clear_backend_activity_snapshot();

    core::HistorySample sample{};
    sample.time = now;
    sample.client_sessions = counts.total;
    sample.active = counts.active;
    sample.idle = counts.idle;
    sample.idle_in_transaction = counts.idle_in_transaction + counts.idle_in_transaction_aborted;
    sample.waiting_on_lock = counts.waiting_on_lock;
    sample.utilization_pct = core::utilization_pct(counts.total, usable_slots());

    LWLockAcquire(state->active_lock, LW_SHARED);
    for (int i = 0; i < state->slot_count; ++i) {
        sample.running += state->active_entries[i].state == core::ActiveState::kRunning ? 1 : 0;
        sample.queued += state->active_entries[i].state == core::ActiveState::kQueued ? 1 : 0;
    }
    LWLockRelease(state->active_lock);

    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    core::HistorySample& totals = state->last_totals;
    sample.connects = state->total_connects - totals.connects;
    sample.disconnects = state->total_disconnects - totals.disconnects;
    sample.rejected = state->total_rejected - totals.rejected;
    sample.terminated = state->total_terminated - totals.terminated;
    sample.login_waits = state->total_login_waits - totals.login_waits;
    sample.logins_waiting = state->login_waiting;
    totals.login_waits = state->total_login_waits;
    totals.connects = state->total_connects;
    totals.disconnects = state->total_disconnects;
    totals.rejected = state->total_rejected;
    totals.terminated = state->total_terminated;
    core::ring_push(state->history, state->history_capacity, &state->history_written, sample);
    LWLockRelease(state->lock);
    sample_groups(state, now);
    return now + interval;
}

}  // namespace connguard::pg
