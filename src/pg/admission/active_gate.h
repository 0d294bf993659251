// max_active at the statement: the first statement of a transaction (ExecutorStart for plans,
// ProcessUtility for utility statements other than transaction control) takes a place in the
// session's group, queueing FIFO when every place is taken; the end of the transaction
// (commit, abort, PREPARE TRANSACTION, or the session's exit) gives it back and wakes the
// head of the queue. A session under no max_active rule pays one comparison per statement.
//
// A queued statement gives up with ERROR 53000 past active_wait, or at once when a session
// holding a place of its group waits for a lock the queued one holds (its first statement's
// parse and plan took it): that wait would otherwise never end. Cancel and terminate interrupt
// the wait as they interrupt any statement.
#pragma once

namespace connguard::pg {

// Installs the hooks; call from _PG_init during preload.
void install_active_gate();

// Gives back this session's place, or leaves the queue (from the exit callback; idempotent).
void leave_active_gate();

}  // namespace connguard::pg
