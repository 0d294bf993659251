#include "pg/admission/login_queue.h"

extern "C" {
#include "utils/timestamp.h"
#include "storage/latch.h"
#include "storage/proc.h"
}

namespace connguard::pg {

core::ActiveKey login_group(const char* rule_name, core::CapPer per, const core::SessionKey& session) {
    return core::active_key(core::group_key(rule_name, per, session));
}

void join_login_queue_locked(SharedState* state, int index, const core::ActiveKey& group, const core::SessionKey& session,
                             TimestampTz now) {
    core::LoginWaiter& waiter = state->login_waiters[index];
    if (waiter.waiting) return;
    waiter.waiting = true;
    waiter.woken = false;
    waiter.woken_at_us = 0;
    waiter.ticket = ++state->login_tickets;
    waiter.since_us = now;
    waiter.group = group;
    waiter.name = core::group_name(session.database, session.role, session.application);
    ++state->login_waiting;
}

Latch* wake_next_login_locked(SharedState* state, const core::ActiveKey& group) {
    if (state->login_waiting == 0) return nullptr;
    const int next = core::login_queue_next_to_wake(state->login_waiters, state->slot_count, group);
    if (next == core::kNoWaiter) return nullptr;  // every waiter is already about to look
    state->login_waiters[next].woken = true;
    state->login_waiters[next].woken_at_us = GetCurrentTimestamp();  // the place is given back now
    return &GetPGProcByNumber(next)->procLatch;
}

void wake_waiting_logins_locked(SharedState* state) {
    if (state->login_waiting == 0) return;
    for (int i = 0; i < state->slot_count; ++i) {
        core::LoginWaiter& waiter = state->login_waiters[i];
        if (!waiter.waiting || waiter.woken) continue;
        waiter.woken = true;
        SetLatch(&GetPGProcByNumber(i)->procLatch);
    }
}

Latch* leave_login_queue_locked(SharedState* state, int index) {
    if (state->login_waiting == 0) return nullptr;  // it waits in no queue either (its page is not read)
    core::LoginWaiter& waiter = state->login_waiters[index];
    if (!waiter.waiting) return nullptr;
    waiter.waiting = false;
    --state->login_waiting;
    return wake_next_login_locked(state, waiter.group);
}

Latch* wake_next_login_for_locked(SharedState* state, const core::SessionSlot& place) {
    if (state->login_waiting == 0 || !place.counted) return nullptr;
    const core::CompiledRule* rule = core::rule_named(state->rules, state->rule_count, place.rule_name);
    return wake_next_login_locked(
        state, login_group(place.rule_name, core::group_cap_per(rule), core::key_of(place, place.application)));
}

}  // namespace connguard::pg
