// max_active: how many sessions of a cap group may be inside a transaction at once, and the
// FIFO queue of the others. A session takes a place at the first statement of a transaction
// and gives it back when the transaction ends; one that finds every place taken queues, and
// the session giving a place back hands it to the head of the queue (the caller then wakes
// it). Fixed arrays, allocation-free and trivially copyable: the table lives in shared memory,
// guarded by a lock of its own (not the slot table's), taken once to take a place and once to
// give it back.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "address.h"
#include "admission.h"
#include "login_application.h"
#include "rule.h"

namespace connguard::core {

// A cap group as fixed bytes (core::GroupKey written out), zeroed before it is filled, so two
// keys are equal exactly when their bytes are.
struct ActiveKey {
    char rule[kMaxRuleNameBytes + 1];
    char name[kMaxNameBytes + 1];
    IpAddress address;
    std::uint32_t hash;  // of the bytes before it: where the table starts looking for the group
    CapPer per;
    bool by_address;
    bool has_address;  // false with by_address: a Unix socket, a group of its own
};
static_assert(std::is_trivially_copyable_v<ActiveKey>);

// A cap group's key (core::group_key, the one definition of a group) as fixed bytes.
ActiveKey active_key(const GroupKey& group) noexcept;

bool same_active_key(const ActiveKey& a, const ActiveKey& b) noexcept;

enum class ActiveState : std::uint8_t { kNone, kRunning, kQueued };

// One per backend slot (indexed like the session slots).
struct ActiveEntry {
    ActiveState state;
    std::int32_t group;      // its group's index while running or queued
    std::int32_t next;       // the next in its group's queue, -1 at the tail
    std::int64_t since_us;   // when it queued (for the longest wait), or started running
};
static_assert(std::is_trivially_copyable_v<ActiveEntry>);

// A group's place in the table. Once used, an entry keeps its key while it is empty (nobody
// running or queued) until another group needs it: open addressing without removals, so a
// group is always found by probing from its hash to the first entry never used.
struct ActiveGroup {
    bool ever_used;
    ActiveKey key;
    std::int32_t limit;    // the max_active of the last session that asked for a place
    std::int32_t running;
    std::int32_t waiting;
    std::int32_t head;     // first in the queue, -1 when empty
    std::int32_t tail;
};
static_assert(std::is_trivially_copyable_v<ActiveGroup>);

// `capacity` entries and as many groups: a session is in at most one group, so there is always
// an empty group for a new key.
struct ActiveTable {
    ActiveEntry* entries;
    ActiveGroup* groups;
    std::int32_t capacity;
};

// Sets every entry and group free.
void reset_active_table(const ActiveTable& table) noexcept;

enum class Take : std::uint8_t {
    kRun,       // it holds a place now
    kQueued,    // every place was taken: it waits at the tail of its group's queue
    kOverRun,   // every place was taken, and it runs anyway (monitor mode, dry run): a would-wait
};

// Session `self` (kNone) asks for a place in group `key` whose max_active is `limit` (>= 1).
// With `queue` false it never waits. A place is free when fewer than `limit` run and nobody
// queues before it (first come, first served).
Take take_place(const ActiveTable& table, std::int32_t self, const ActiveKey& key, std::int32_t limit, bool queue,
                std::int64_t now_us) noexcept;

// A queued session looks again (woken, or its limit may have been raised): true when it
// runs now, because the giver handed it the place or because a place is free for it.
bool place_granted(const ActiveTable& table, std::int32_t self) noexcept;

// Session `self` gives its place back or leaves the queue (its transaction ended, it gave up
// waiting, it exited); nothing when it holds neither. The places freed go to the heads of
// the queue, in order, while fewer than the group's limit run: their indexes are written to
// `woken` (at most `woken_capacity`; others handed a place find it themselves through
// place_granted) and counted in the return value.
int give_back(const ActiveTable& table, std::int32_t self, std::int32_t* woken, int woken_capacity) noexcept;

// How long the oldest of a group's queue has waited, in microseconds (0 when none waits).
std::int64_t longest_wait_us(const ActiveTable& table, std::int32_t group, std::int64_t now_us) noexcept;

}  // namespace connguard::core
