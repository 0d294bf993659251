#include "login_queue.h"

namespace connguard::core {

int login_queue_length(const LoginWaiter* waiters, int count, const ActiveKey& group) noexcept {
    int length = 0;
    for (int i = 0; i < count; ++i) length += waiters[i].waiting && same_active_key(waiters[i].group, group) ? 1 : 0;
    return length;
}

int login_queue_rank(const LoginWaiter* waiters, int count, const ActiveKey& group, int self) noexcept {
    int rank = 0;
    for (int i = 0; i < count; ++i) {
        rank += i != self && waiters[i].waiting && same_active_key(waiters[i].group, group) &&
                waiters[i].ticket < waiters[self].ticket;
    }
    return rank;
}

int login_queue_position(const LoginWaiter* waiters, int count, int self) noexcept {
    if (!waiters[self].waiting) return 0;
    return login_queue_rank(waiters, count, waiters[self].group, self) + 1;
}

int login_queue_next_to_wake(const LoginWaiter* waiters, int count, const ActiveKey& group) noexcept {
    int next = kNoWaiter;
    for (int i = 0; i < count; ++i) {
        if (!waiters[i].waiting || waiters[i].woken || !same_active_key(waiters[i].group, group)) continue;
        if (next == kNoWaiter || waiters[i].ticket < waiters[next].ticket) next = i;
    }
    return next;
}

LoginTurn login_turn(int free_places, bool queued, int rank, int waiting, int queue_size, bool time_left) noexcept {
    // The waiters before it have the first claim on the free places.
    const int before = queued ? rank : waiting;
    if (before < free_places) return LoginTurn::kAdmit;
    if (!time_left) return LoginTurn::kRefuse;
    if (!queued && waiting >= queue_size) return LoginTurn::kQueueFull;
    return LoginTurn::kWait;
}

}  // namespace connguard::core
