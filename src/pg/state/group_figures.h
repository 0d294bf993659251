// Feeding connguard.pool_advice's figures per application group (core/group_figures.h):
// sessions leave news in a ring in shared memory (a login, a logout with the session's
// lifetime, a refusal, an ending), under the lock they already hold; the worker reads the
// news into the figures at each pass and samples every group's sessions at each history
// tick. Nothing here runs per query.
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

// Leaves news for the worker; the caller holds the lock exclusively. Returns the worker's
// latch to set once the lock is released when the ring has filled to half since the worker
// last read it, once (nullptr otherwise: the worker reads it at its next pass anyway).
Latch* leave_group_news_locked(SharedState* state, core::GroupNewsKind kind, core::EventReason reason,
                               std::int64_t duration_us, const char* database, const char* role,
                               const char* application);

// A session's place is about to move to another application name (a rename): its sessions
// count follows it. The caller holds the lock exclusively; the worker reads it at its next pass.
void leave_move_news_locked(SharedState* state, const core::SessionSlot& slot, const char* application);

// The worker: reads the news left since its last pass into the figures.
void read_group_news(SharedState* state);

// The worker, at each history tick: reads the news, then samples the sessions of every group
// (sessions, active, idle, whether its cap is full); groups without a session get a sample of 0.
void sample_groups(SharedState* state, TimestampTz now);

// reset_stats(): forgets every group and the unread news; the caller holds the lock exclusively.
void reset_group_figures_locked(SharedState* state);

// The length of one bucket of the figures in shared memory (the caller holds the lock): the
// worker's, or under the settings as they are now before its first sample.
std::int64_t figure_span_locked(const SharedState* state);

inline core::GroupTable group_table(SharedState* state) {
    return core::GroupTable{state->groups, state->group_tags, static_cast<std::size_t>(state->group_capacity),
                            &state->groups_evicted};
}

}  // namespace connguard::pg
