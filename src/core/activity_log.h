// What pg_connguard did, kept in fixed shared-memory structures: per-rule counters and
// a ring of events (newest overwrite oldest; what was overwritten is counted).
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "address.h"
#include "login_application.h"
#include "rule.h"

namespace connguard::core {

enum class EventReason : std::uint8_t {
    kNone, kCap, kIdle, kIdleInTransaction, kIdleBlocker, kAge, kTransactionTime, kMaxActive, kReserved
};
inline constexpr std::size_t kEventReasonCount = 9;  // arrays indexed by EventReason
static_assert(static_cast<std::size_t>(EventReason::kReserved) + 1 == kEventReasonCount,
              "a new reason needs the count");

// max_active's wait-time histogram: statements that queued, by how long, in buckets up to
// 1 ms, 10 ms, 100 ms, 1 s, 10 s, and longer.
inline constexpr std::size_t kActiveWaitBuckets = 6;
inline constexpr std::int64_t kActiveWaitBucketUs[kActiveWaitBuckets - 1] = {1000, 10000, 100000, 1000000, 10000000};
std::size_t active_wait_bucket(std::int64_t waited_us) noexcept;

// The login queue's wake-up histogram: logins admitted after a leaving session gave their
// group a place back and set their latch, by the time from that moment to their admission
// (the server side of the hand-over), in buckets up to 0.1 ms, 0.25 ms, 0.5 ms, 1 ms,
// 2.5 ms, 10 ms, and longer.
inline constexpr std::size_t kLoginWakeBuckets = 7;
inline constexpr std::int64_t kLoginWakeBucketUs[kLoginWakeBuckets - 1] = {100, 250, 500, 1000, 2500, 10000};
std::size_t login_wake_bucket(std::int64_t wake_us) noexcept;

struct RuleCounters {
    char rule_name[kMaxRuleNameBytes + 1];  // "(default)" for sessions matching no rule
    std::uint64_t admitted;
    std::uint64_t rejected;
    std::uint64_t would_reject;
    std::uint64_t terminated[kEventReasonCount];  // by EventReason (kCap, kIdle, ... ; kNone unused)
    std::uint64_t would_terminate;  // would-cancels included
    std::uint64_t cancelled;  // statements cancelled for max_transaction_time (action 'cancel')
    // max_active: statements that queued for a place, those that gave up at active_wait, those
    // that gave up because a place-holder waited for their lock, the time queued (microseconds),
    // and statements that ran over the limit in monitor mode or dry run.
    std::uint64_t active_waits;
    std::uint64_t active_wait_timeouts;
    std::uint64_t active_wait_deadlocks;
    std::uint64_t active_wait_us;
    std::uint64_t active_wait_buckets[kActiveWaitBuckets];  // by active_wait_bucket
    std::uint64_t would_wait;
    // The login queue: logins that waited for a place (connguard.login_wait), those admitted
    // after waiting, those refused when their wait was over, and those refused at once because
    // connguard.login_queue_size logins of their group already waited.
    std::uint64_t login_waits;
    std::uint64_t login_wait_admitted;
    std::uint64_t login_wait_rejected;
    std::uint64_t login_queue_full;
    std::uint64_t login_wait_us;  // the time logins waited in the queue, summed
    // Logins admitted after a wake-up by a place given back: the time from the wake-up to their
    // admission, summed (microseconds), and by login_wake_bucket.
    std::uint64_t login_wake_us;
    std::uint64_t login_wake_buckets[kLoginWakeBuckets];
    std::int32_t peak;  // most concurrent counted sessions of the rule
};
static_assert(std::is_trivially_copyable_v<RuleCounters>);

// Whether counters under `rule_name` must be kept: the rule is in force, or it is the
// default row. Counters of other names (rules no longer in force) are shown until their
// place is needed for a new name, and dropped by a reset.
using CountersNeeded = bool (*)(const char* rule_name, const void* context);

// The counters of rule_name in a fixed table (its used entries come first), added if
// missing. When the table is full, the first entry `needed` does not keep is given to the
// new name. nullptr only when every entry is needed (the table holds 2 x connguard.max_rules
// + 1 names, so at most half of it ever is).
RuleCounters* find_or_add_counters(RuleCounters* table, std::size_t capacity, const char* rule_name,
                                   CountersNeeded needed, const void* context) noexcept;

// Zeroes every count and drops the names `needed` does not keep, used entries staying first.
void reset_counters(RuleCounters* table, std::size_t capacity, CountersNeeded needed, const void* context) noexcept;

enum class EventKind : std::uint8_t {
    kRejected, kTerminated, kWouldReject, kWouldTerminate, kRulesLoaded, kRulesError, kCancelled, kWouldCancel,
    kWaitTimeout, kWaitDeadlock, kWouldWait  // max_active: a statement that gave up queueing, or ran over the limit
};

const char* event_kind_name(EventKind kind) noexcept;
const char* event_reason_name(EventReason reason) noexcept;  // nullptr for kNone

struct Event {
    std::int64_t time;  // PostgreSQL timestamp (microseconds since 2000-01-01)
    EventKind kind;
    EventReason reason;
    std::int32_t pid;
    char database[kMaxNameBytes + 1];
    char role[kMaxNameBytes + 1];
    char application[kMaxNameBytes + 1];
    bool has_client_addr;
    IpAddress client_addr;
    char rule_name[kMaxRuleNameBytes + 1];
    char detail[192];
};
static_assert(std::is_trivially_copyable_v<Event>);

// One sample of connguard.history: the pool at `time`, and what happened since the
// previous sample.
struct HistorySample {
    std::int64_t time;
    std::int32_t client_sessions;
    std::int32_t active;
    std::int32_t idle;
    std::int32_t idle_in_transaction;  // aborted ones included
    std::int32_t waiting_on_lock;
    double utilization_pct;
    std::uint64_t connects;
    std::uint64_t disconnects;
    std::uint64_t rejected;
    std::uint64_t terminated;
    std::int32_t running;  // sessions holding a max_active place at the sample
    std::int32_t queued;   // sessions queued for one
    std::int32_t logins_waiting;  // logins waiting in the login queue at the sample
    std::uint64_t login_waits;    // logins that waited in it (and left it) since the sample before
};
static_assert(std::is_trivially_copyable_v<HistorySample>);

// Fixed rings (events, history): `written` counts every item ever pushed; once the ring
// is full the newest overwrites the oldest.
template <typename T>
void ring_push(T* ring, std::size_t capacity, std::uint64_t* written, const T& item) noexcept {
    if (capacity == 0) return;
    ring[*written % capacity] = item;
    ++*written;
}

// How many items the ring holds now.
inline std::size_t ring_size(std::size_t capacity, std::uint64_t written) noexcept {
    return written < capacity ? static_cast<std::size_t>(written) : capacity;
}

// The i-th newest item (0 = newest); i < ring_size().
template <typename T>
const T& ring_newest(const T* ring, std::size_t capacity, std::uint64_t written, std::size_t i) noexcept {
    return ring[(written - 1 - i) % capacity];
}

// How many pushed items were overwritten.
std::uint64_t ring_dropped(std::size_t capacity, std::uint64_t written) noexcept;

}  // namespace connguard::core
