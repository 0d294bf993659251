#include "login_queue.h"

namespace connguard::core {

int login_queue_head(const LoginWaiter* waiters, int count, const ActiveKey& group) noexcept {
    int head = kNoWaiter;
    for (int i = 0; i < count; ++i) {
        if (!waiters[i].waiting || !same_active_key(waiters[i].group, group)) continue;
        if (head == kNoWaiter || waiters[i].ticket < waiters[head].ticket) head = i;
    }
    return head;
}

int login_queue_length(const LoginWaiter* waiters, int count, const ActiveKey& group) noexcept {
    int length = 0;
    for (int i = 0; i < count; ++i) length += waiters[i].waiting && same_active_key(waiters[i].group, group) ? 1 : 0;
    return length;
}

LoginTurn login_turn(bool has_room, bool queued, bool is_head, int waiting, int queue_size, bool time_left) noexcept {
    // Nobody waits before it: a place now is its own.
    const bool first_in_line = queued ? is_head : waiting == 0;
    if (has_room && first_in_line) return LoginTurn::kAdmit;
    if (!time_left) return LoginTurn::kRefuse;
    if (!queued && waiting >= queue_size) return LoginTurn::kQueueFull;
    return LoginTurn::kWait;
}

}  // namespace connguard::core
