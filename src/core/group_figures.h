// Figures over time per application group, a (database, role, application_name), for
// connguard.pool_advice: kept in a fixed table in shared memory (the group seen least
// recently gives its place to a new one when the table is full), each group with its
// figures in kFigureBuckets buckets spanning the history window and the last hour in
// 5-minute slots. They are fed two ways: news (a login, a logout with the session's
// lifetime, a refusal, an ending) that sessions leave in a ring for the worker, and a
// sample of every group's sessions at each history tick. Everything here is
// allocation-free and trivially copyable: it runs under pg_connguard's lock.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "activity_log.h"

namespace connguard::core {

inline constexpr int kFigureBuckets = 24;  // the history window in 24 parts
inline constexpr int kRecentSlots = 12;    // the last hour in 5-minute parts
inline constexpr std::int64_t kRecentSlotUs = 5LL * 60 * 1000000;
inline constexpr int kActiveBins = 24;     // active sessions: 0-15 one by one, then wider bins
inline constexpr int kLifetimeBins = 48;   // session lifetimes: two bins per doubling from 1 ms

struct GroupName {
    char database[kMaxNameBytes + 1];
    char role[kMaxNameBytes + 1];
    char application[kMaxNameBytes + 1];
};
static_assert(std::is_trivially_copyable_v<GroupName>);

// The name (each part clipped to what a slot holds).
GroupName group_name(std::string_view database, std::string_view role, std::string_view application) noexcept;
std::uint32_t group_tag(const GroupName& name) noexcept;
bool same_group_name(const GroupName& a, const GroupName& b) noexcept;

// kMovedOut / kMovedIn: a session renamed itself from one group into another (its login
// stays counted where it logged in; its lifetime is counted where it ends).
// kLoginWaited: a login waited in the login queue (connguard.login_wait) for duration_us; its
// kLogin or kRefused follows.
enum class GroupNewsKind : std::uint8_t {
    kLogin, kLogout, kRefused, kWouldRefuse, kEnded, kWouldEnd, kMovedOut, kMovedIn, kLoginWaited
};

// What a session tells the worker about its group.
struct GroupNews {
    std::int64_t time;  // PostgreSQL timestamp
    GroupNewsKind kind;
    EventReason reason;        // kEnded, kWouldEnd: why (kNone: close_sessions)
    std::int64_t duration_us;  // kLogout: the session's lifetime; kEnded, kWouldEnd: how long in its state;
                               // kLoginWaited: how long it waited
    GroupName name;
};
static_assert(std::is_trivially_copyable_v<GroupNews>);

struct FigureBucket {
    std::int64_t epoch;  // the span of time it holds (time / span); a bucket of an older span is zeroed before reuse
    std::int32_t peak_sessions;
    std::int32_t peak_active;
    std::uint32_t samples;
    std::uint32_t at_cap_samples;    // samples in which the group's cap was full
    std::uint64_t session_samples;   // sessions summed over the samples
    std::uint64_t idle_samples;      // idle sessions (not in a transaction) summed over the samples
    std::uint32_t logins;
    std::uint32_t logouts;
    std::uint32_t refused;
    std::uint32_t would_refuse;
    std::uint32_t login_waits;      // logins that waited in the login queue
    std::uint64_t login_wait_us;    // how long they waited, summed
    std::uint32_t ended[kEventReasonCount];       // by EventReason (kNone: ended by close_sessions)
    std::uint32_t would_end[kEventReasonCount];   // the same in monitor mode or dry run
    std::int64_t longest_leak_us;  // the longest idle in transaction among sessions ended (or that would be) for it
    std::uint32_t active_bins[kActiveBins];
    std::uint32_t lifetime_bins[kLifetimeBins];
};

struct RecentSlot {
    std::int64_t epoch;  // time / kRecentSlotUs
    std::int32_t peak_sessions;
    std::int32_t peak_active;
    std::uint32_t logins;
};

struct GroupFigures {
    bool in_use;
    GroupName name;
    char rule_name[kMaxRuleNameBytes + 1];  // its sessions' rule at the latest sample, "" for the defaults
    std::int64_t first_seen;
    std::int64_t last_seen;  // its latest news, or latest sample with a session
    std::int32_t sessions_now;  // at the latest sample, then counted up and down by logins and logouts
    std::int32_t active_now;    // at the latest sample
    FigureBucket buckets[kFigureBuckets];
    RecentSlot recent[kRecentSlots];
};
static_assert(std::is_trivially_copyable_v<GroupFigures>, "group figures live in shared memory");

// The table: `tags[i]` is group_tag of groups[i] for the groups in use (what a lookup reads
// first), `evicted` counts the groups that gave their place to a new one.
struct GroupTable {
    GroupFigures* groups;
    std::uint32_t* tags;
    std::size_t capacity;
    std::uint64_t* evicted;
};

// Whether a group with sessions may give its place to a new one: news may (a login is the most
// recent sign of life there is), a sample may not (with more groups holding sessions than
// places, every sample would otherwise replace groups and start their figures anew).
enum class Eviction : std::uint8_t { kAny, kQuietOnly };

// The figures of `name`, added if missing. When the table is full, the group seen least
// recently among those without a session now gives its place; with Eviction::kAny, among all
// groups when every one has sessions. nullptr for a table of capacity 0, or a full table of
// groups with sessions under kQuietOnly.
GroupFigures* find_or_add_group(const GroupTable& table, const GroupName& name, std::int64_t now,
                                Eviction eviction = Eviction::kAny) noexcept;

// Forgets every group (connguard.reset_stats); the eviction count restarts from 0.
void clear_groups(const GroupTable& table) noexcept;

// The length of one bucket: the history window (interval x samples kept) in kFigureBuckets
// parts, at least one second.
std::int64_t bucket_span_us(std::int64_t history_interval_us, std::int64_t history_size) noexcept;

void apply_news(GroupFigures* group, const GroupNews& news, std::int64_t span_us) noexcept;

// One look at a group's sessions (at a history tick).
struct GroupSample {
    std::int32_t sessions = 0;
    std::int32_t active = 0;
    std::int32_t idle = 0;
    bool at_cap = false;  // its cap was full
};

void add_sample(GroupFigures* group, const GroupSample& sample, std::int64_t now, std::int64_t span_us) noexcept;

// What the figures say over the history window (and the last hour) at `now`.
struct GroupSummary {
    std::int64_t covered_us = 0;  // how much time the window's figures cover (since first seen, a reset)
    std::int32_t sessions_now = 0;
    std::int32_t active_now = 0;
    std::int32_t peak_sessions_hour = 0;
    std::int32_t peak_active_hour = 0;
    std::int32_t peak_sessions = 0;
    std::int32_t peak_active = 0;
    std::int32_t p95_active = 0;  // the 95th percentile of active sessions over the samples (rounded up to its bin)
    std::uint64_t samples = 0;
    double idle_pct = -1;    // share of session time spent idle; -1 when no session was sampled
    double at_cap_pct = -1;  // share of samples with the cap full; -1 without samples
    double logins_per_minute = 0;  // over the last hour (at least one minute)
    std::uint64_t logins = 0;
    std::uint64_t lifetimes = 0;  // sessions ended whose lifetime is counted
    std::int64_t median_lifetime_us = -1;  // rounded up to its bin; -1 without lifetimes
    std::uint64_t refused = 0;
    std::uint64_t would_refuse = 0;
    std::uint64_t login_waits = 0;    // logins that waited in the login queue
    std::int64_t login_wait_us = 0;   // how long they waited, summed
    std::uint64_t ended[kEventReasonCount] = {};
    std::uint64_t would_end[kEventReasonCount] = {};
    std::int64_t longest_leak_us = 0;
};

GroupSummary summarize(const GroupFigures& group, std::int64_t now, std::int64_t span_us) noexcept;

// The histogram bins (exposed for tests).
int active_bin(std::int32_t active) noexcept;
std::int32_t active_bin_top(int bin) noexcept;  // the largest count the bin holds (INT32_MAX for the last)
int lifetime_bin(std::int64_t lifetime_us) noexcept;
std::int64_t lifetime_bin_top(int bin) noexcept;  // the bin's upper end (its lower end for the last)

}  // namespace connguard::core
