// The login queue in shared memory (see core/login_queue.h): a login that finds its group
// full joins its group's queue and sleeps on its latch; a session that gives a place back
// (it ends) sets the latch of the next waiter of that group not yet woken; a rename or a rule
// change wakes every waiter not yet woken. All
// under the slot table's lock, held exclusively by the caller; a latch returned is set by
// the caller after it lets the lock go.
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

// The fixed-bytes key of the cap group a session of `rule_name` (cap_per `per`) belongs to.
core::ActiveKey login_group(const char* rule_name, core::CapPer per, const core::SessionKey& session);

// Backend `index` joins the queue of `group`; it draws the next ticket. `session` names it
// for the views.
void join_login_queue_locked(SharedState* state, int index, const core::ActiveKey& group, const core::SessionKey& session,
                             TimestampTz now);

// Backend `index` leaves the queue (admitted, refused, or ended), if it was in it. Returns the
// latch of the next waiter of its group to wake, for the caller to set: a place it leaves
// behind (or another free one) is that one's.
Latch* leave_login_queue_locked(SharedState* state, int index);

// The latch of the next waiter to wake in the line of the group `place` counts in (nullptr
// when none): set it once `place` has been given back or has moved away.
Latch* wake_next_login_for_locked(SharedState* state, const core::SessionSlot& place);

// Every waiter not yet woken looks again (its latch is set now): a rename or a rule change may
// have freed a place in any group. Rare next to logins, and the waiters are few
// (connguard.login_queue_size per group).
void wake_waiting_logins_locked(SharedState* state);

// The latch of the first waiter in `group`'s line that no one has woken yet (marked woken now),
// nullptr when none: one place given back, one more waiter wakes to look.
Latch* wake_next_login_locked(SharedState* state, const core::ActiveKey& group);

}  // namespace connguard::pg
