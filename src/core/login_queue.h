// The login queue: logins that find their cap group full wait for a place (up to
// connguard.login_wait) in FIFO order per group, and are woken by the session that gives a
// place back, not by polling. Each waiter draws a ticket from one counter; a waiter's rank
// in its group's line is how many waiters of the group hold lower tickets. How many logins of a group may wait is
// bounded (connguard.login_queue_size): beyond it a login is refused at once, so a client
// retrying at its cap cannot tie up backend slots. Plain arrays in shared memory, under the
// slot table's lock.
#pragma once
#include "no_postgres.h"

#include <cstdint>
#include <type_traits>

#include "active_queue.h"
#include "group_figures.h"

namespace connguard::core {

struct LoginWaiter {
    bool waiting;
    bool woken;            // a session that gave a place back has set its latch; it has not looked yet
    std::uint64_t ticket;  // its place in line: lower came first
    std::int64_t since_us;  // when it began to wait, for the views
    ActiveKey group;        // the cap group it waits for (core::group_key as bytes; group.rule is
                            // the rule it is counted under, "" for the defaults)
    GroupName name;         // its database, role and application_name, for the views
    std::int64_t woken_at_us;  // when a session that gave a place back set its latch (0: none since it last looked)
};
static_assert(std::is_trivially_copyable_v<LoginWaiter>);

constexpr int kNoWaiter = -1;

// Its place in its group's line, 1 for the head (0: it does not wait).
int login_queue_position(const LoginWaiter* waiters, int count, int self) noexcept;

// How many logins wait for `group`.
int login_queue_length(const LoginWaiter* waiters, int count, const ActiveKey& group) noexcept;

// How many waiters of `group` came before waiters[self] (its rank in line, 0 for the head).
int login_queue_rank(const LoginWaiter* waiters, int count, const ActiveKey& group, int self) noexcept;

// The first waiter of `group` in line that no leaving session has woken yet (kNoWaiter: none).
// Each place given back wakes one more waiter, so several places freed at once are taken by
// as many waiters at once, in order, rather than one after the other.
int login_queue_next_to_wake(const LoginWaiter* waiters, int count, const ActiveKey& group) noexcept;

// What a login does once its admission is decided.
enum class LoginTurn : std::uint8_t {
    kAdmit,      // a place is free for it: fewer waiters come before it than places are free
    kWait,       // it queues (or stays in the queue) until a place is given back or its time is up
    kQueueFull,  // its group is full and connguard.login_queue_size logins already wait: refused at once
    kRefuse,     // no place for it (or others wait before it) and it may wait no longer
};
// `free_places`: places its group has free now (cap less sessions, 0 when full); `queued`: it
// is in the queue already, `rank` waiters come before it there; `waiting`: how many wait for
// its group (itself included); `queue_size`: the bound; `time_left`: connguard.login_wait is
// not over for it. A login not in the queue comes after every waiter.
LoginTurn login_turn(int free_places, bool queued, int rank, int waiting, int queue_size, bool time_left) noexcept;

}  // namespace connguard::core
