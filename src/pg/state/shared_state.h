// pg_connguard's shared memory: sized once at server start, holds only trivially
// copyable data, arrays, one LWLock and atomics. All of it, the LWLock included, lies in
// the one block allocated after PostgreSQL's own structures: loading the library leaves
// every core structure at the offset it has without it.
//
// Locking rules (every access obeys them; a new field must say which rule it follows):
//
// 1. Fixed at start-up. The postmaster's shared memory start-up hook writes these before
//    any backend exists, and nothing writes them again; anyone reads them without the lock:
//      lock_storage, lock_tranche, lock, rule_capacity, slot_count, counter_capacity,
//      event_capacity, history_capacity, group_capacity, news_capacity, and the array pointers
//      rules, rule_sieves, slots, slot_tags, endings, counters, events, history, groups,
//      group_tags, news, active_lock, active_entries, active_groups, login_waiters (the
//      pointers, not what they point to).
//    The same hook restores the rules from pg_connguard.rules; it runs before any reader.
//
// 2. Atomics, read and written without the lock:
//      reload_requested: anyone adds 1 (request_rule_reload); the worker reads it.
//      rename_pending: a session raises it (rename_notice), the worker exchanges it to 0.
//      placement_version: whoever changes the rule set or moves a session to another rule or
//        group adds 1 (under the lock, after the change); sessions compare it with the version
//        their max_active look-up was made at (active_gate.cpp).
//      loader_paused: the first rules loader to pause for connguard.debug_loader_pause raises it.
//    An atomic only says "look"; what to look at is read under the lock.
//
// 3. Everything else is protected by `lock`: the rule set and its version, every slot and slot
//    tag, the ending notices, the counters, both rings and their `written` counts, the totals,
//    the worker's pid, latch and last run, the last load's status, reload_served, stats_reset_at
//    the login-check figures, the group figures and the news ring (with their counts), the
//    login queue (login_waiters, login_waiting, login_tickets). Writers
//    hold it exclusively: sessions leaving news (login hook, exit callback, record_event), the
//    worker reading the news into the group figures and sampling them, reset_stats(); and the login hook (its own slot, its
//    counters and event; it clears its ending notice), a session's exit callback (its own slot),
//    the worker (regrouping slots, ending notices, reload_served, worker_last_run, history, its
//    pid and latch), close_sessions() (ending notices), the rules loader (the rule set,
//    last_load) and reset_stats(). A session reads its own ending notice under the shared lock
//    while it reports its end (never while holding the lock: see ending_notice.cpp). Readers take
//    it shared, copy what they need into local memory (or, like the rename notice, compare a few
//    bytes), release it, and only then build tuples, raise errors or signal. Nothing is allocated
//    or reported while it is held; it is held by one process at a time for at most one pass over
//    the slots. One kind of signal is sent under it: waking the logins waiting in the login
//    queue (login_queue.cpp, wake_waiting_logins_locked), whose latches are set while their
//    woken flags change; SetLatch neither allocates nor reports.
//
// 4. max_active's table (active_entries, active_groups) is protected by `active_lock`, a lock
//    of its own so that taking and giving back a place never waits for the slot table's. A
//    session takes it exclusively to take a place, to look whether it was handed one, and to
//    give its place back (or leave the queue); views take it shared. It is never held together
//    with `lock`, nor while waiting, reporting or allocating.
//
// One rule-3 field is read without the lock: max_active_rule_count, by a transaction's first
// statement (active_gate.cpp), to skip the look-up when no rule has a max_active. A value read
// as the rule set changes is corrected at the next statement, which finds placement_version
// changed. A latch pointer copied under the lock may
// be stale by the time it is set (the worker exited meanwhile); a latch lives in shared
// memory for the life of the server, so setting it then is a harmless wake-up.
#pragma once

#include "pg/postgres_includes.h"

#include "core/active_queue.h"
#include "core/login_queue.h"
#include "core/activity_log.h"
#include "core/admission.h"
#include "core/group_figures.h"

extern "C" {
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"
}

namespace connguard::pg {

inline constexpr std::size_t kLoadErrorBytes = 512;

// Why pg_connguard is ending a session: written (under the lock) right before the session is
// signalled, read by that session itself when it reports its end, so that its client reads
// the reason in core's vocabulary (see core::ending_words) instead of "administrator command".
struct EndingNotice {
    std::int32_t pid;  // the session it is for; 0 = none
    core::EventReason reason;
    bool cancel;  // its running statement is cancelled (max_transaction_time, action 'cancel'), not the session ended
    char detail[192];
};

struct RuleLoadStatus {
    std::uint64_t generation;  // highest reload request this attempt covered
    bool ok;
    std::int32_t rule_count;
    TimestampTz attempted_at;
    char error[kLoadErrorBytes];
};

struct SharedState {
    // The lock lives here, in a tranche of its own, rather than in the main LWLock array
    // that a named tranche request would grow: that array comes first in shared memory,
    // and growing it moved every core structure after it (the buffer pool, the lock and
    // proc arrays) by 128 bytes.
    LWLockPadded lock_storage;
    int lock_tranche;
    LWLock* lock;  // &lock_storage.lock

    // Reload requests: anyone bumps `reload_requested` and sets the worker's latch; the
    // rules loader records in `last_load.generation` the request number it served.
    pg_atomic_uint64 reload_requested;
    std::uint64_t reload_served;  // the highest request a rules loader ran for (the worker writes it)
    Latch* worker_latch;  // nullptr while no worker runs
    pg_atomic_uint32 rename_pending;  // a session changed its application_name since the worker last looked
    pg_atomic_uint32 loader_paused;   // a rules loader took connguard.debug_loader_pause (tests only)
    pg_atomic_uint64 placement_version;  // see rule 2
    pid_t worker_pid;

    RuleLoadStatus last_load;

    // The rule set the server enforces: enabled rules in (priority, rule_name) order.
    std::uint64_t rule_set_version;  // 0 until the first successful load
    std::uint64_t published_generation;  // the reload request the rules in force answer: an older one never replaces them
    char no_rules_reason[kLoadErrorBytes];  // non-empty: no rule is in force because of this (see publish_no_rules)
    TimestampTz rules_loaded_at;
    std::int32_t rule_count;
    std::int32_t rule_capacity;  // connguard.max_rules
    core::CompiledRule* rules;   // [rule_capacity]
    core::RuleSieve* rule_sieves;  // [rule_capacity], sieve_of(rules[i]): what classifying a login reads first
    std::int32_t group_rule_count;  // rules whose role_name is a "+group"
    std::int32_t reserving_rule_count;  // rules with a min_connections: a login checks reservations only then
    std::int32_t max_active_rule_count;  // rules with a max_active: only then does a transaction's first statement look its rule up

    // One slot per backend, indexed by proc number: who holds a place in which group. Behind
    // them, slots[(1 + k) * slot_count + i] (k < core::kKeptPlaces) are the places backend i
    // keeps under names PostgreSQL may restore (the name before a SET application_name not yet
    // committed); see rename_keeping.h and kept_place_index. kept_count of those are in use:
    // while it is 0, a count reads the first slot_count only.
    std::int32_t slot_count;
    std::int32_t kept_count;
    core::SessionSlot* slots;  // [(1 + core::kKeptPlaces) * slot_count]
    core::SlotTags* slot_tags;  // [(1 + core::kKeptPlaces) * slot_count], tags_of(slots[i]): what a login's count reads first
    EndingNotice* endings;      // [slot_count], indexed like the slots

    std::int32_t counter_capacity;
    core::RuleCounters* counters;  // [counter_capacity]

    std::int32_t event_capacity;  // connguard.event_log_size
    std::uint64_t events_written;
    core::Event* events;  // [event_capacity], a ring

    // Since server start, never reset: the worker turns them into per-interval history.
    std::uint64_t total_connects;     // logins admitted
    std::uint64_t total_disconnects;  // admitted sessions that ended
    std::uint64_t total_rejected;
    std::uint64_t total_terminated;
    std::uint64_t total_login_waits;  // logins that waited in the login queue (for history)

    TimestampTz worker_last_run;
    TimestampTz stats_reset_at;

    // The login hook's own cost since stats_reset_at: logins it decided on, and the CPU
    // time from entering the hook to deciding (lookups and decision), in seconds.
    std::uint64_t login_checks;
    double login_check_seconds;

    std::int32_t history_capacity;  // connguard.history_size
    std::uint64_t history_written;
    core::HistorySample* history;  // [history_capacity], a ring
    core::HistorySample last_totals;  // the totals at the newest sample (its connects... fields)

    // connguard.pool_advice: figures per application group (only the worker and reset_stats()
    // write them), and the news sessions leave for the worker (a ring it reads at each pass).
    std::int32_t group_capacity;  // connguard.pool_advice_groups
    core::GroupFigures* groups;   // [group_capacity]
    std::uint32_t* group_tags;    // [group_capacity], group_tag of each group in use
    std::uint64_t groups_evicted;
    std::int32_t news_capacity;   // 2 x MaxBackends, at least 1024
    std::uint64_t news_written;
    std::uint64_t news_read;      // by the worker
    std::uint64_t news_lost;      // overwritten before the worker read them
    bool news_wake_sent;          // the ring reached half full and the worker's latch was set since it last read
    std::int64_t group_span_us;   // the bucket length the figures were made with (the worker sets it)
    core::GroupNews* news;        // [news_capacity], a ring

    // max_active (rule 4): who runs and who queues, per group; indexed like the slots.
    LWLockPadded active_lock_storage;
    LWLock* active_lock;  // &active_lock_storage.lock
    core::ActiveEntry* active_entries;  // [slot_count]
    core::ActiveGroup* active_groups;   // [slot_count]

    // The login queue (rule 3): logins waiting for a place in a full group, indexed like the
    // slots; see core/login_queue.h and login_queue.cpp.
    core::LoginWaiter* login_waiters;  // [slot_count]
    std::int32_t login_waiting;         // how many of them wait: 0 lets a leaving session skip the look
    std::uint64_t login_tickets;        // the last ticket drawn
};

inline core::ActiveTable active_table(const SharedState* state) {
    return core::ActiveTable{state->active_entries, state->active_groups, state->slot_count};
}

// A session's rule or group changed, or the rule set did: sessions look up their max_active
// again at their next transaction, and logins waiting for a place look again at once (a place
// may have come free in their group). Caller holds `lock` exclusively.
void note_placement_changed_locked(SharedState* state);

// How many slots a count of a group reads: the sessions' own, and the kept places behind
// them while any is in use. Caller holds the lock.
inline int counted_places_locked(const SharedState* state) {
    return state->kept_count > 0 ? (1 + core::kKeptPlaces) * state->slot_count : state->slot_count;
}

// Where backend `index` keeps its k-th place for a name PostgreSQL may restore.
inline int kept_place_index(const SharedState* state, int index, int k) {
    return (1 + k) * state->slot_count + index;
}

// Registers the shared memory hooks; call from _PG_init during preload.
void install_shared_state_hooks();

// The attached shared state, or nullptr when the library was not preloaded.
SharedState* shared_state();

// Like shared_state(), but raises a clear ERROR when the library was not preloaded.
SharedState* require_shared_state();

// Asks the worker to reload the rules and returns the request number to wait for.
std::uint64_t request_rule_reload(SharedState* state);

// Installs a compiled rule set (count <= rule_capacity) as the next version and records
// a successful load for request `generation`, unless rules of a newer request are in force
// already (a loader that outlived the worker that started it): then it returns false.
// `no_rules_reason`: nullptr for rules read from the table; for an empty set published because
// there is no table to read, why.
bool publish_rules(SharedState* state, std::uint64_t generation, const core::CompiledRule* rules, int count,
                   const char* no_rules_reason);

// Records a failed load for request `generation` unless it was answered already; returns
// false if it was. *version and *count receive the rule set that stays in force.
bool record_failed_load(SharedState* state, std::uint64_t generation, const char* error, std::uint64_t* version,
                        int* count);

}  // namespace connguard::pg
