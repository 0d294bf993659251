#include "pg/state/shared_state.h"

#include "pg/state/activity.h"
#include "pg/admission/login_queue.h"
#include "pg/rules/rule_file.h"
#include "pg/state/settings.h"

extern "C" {
#include "storage/ipc.h"
#include "storage/shmem.h"
}

namespace connguard::pg {
namespace {

constexpr const char* kTrancheName = "pg_connguard";

SharedState* attached = nullptr;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

// Header, then the arrays, each MAXALIGNed. Slots and slot tags hold 1 + core::kKeptPlaces
// places per backend: its own, then (from MaxBackends on, a row of MaxBackends each) the
// places it keeps while a rename is not yet kept. Sizes come from restart-only settings and
// MaxBackends, so they are fixed for the life of the server. What every login reads (the
// header, the rule sieves, the slot tags, the counters' first entries) comes first and close
// together: a new backend pays a page fault for each stretch of shared memory it first reads.
struct Layout {
    Size rule_sieves, slot_tags, counters, rules, slots, endings, events, history, group_tags, groups, news,
        active_entries, active_groups, login_waiters, total;
};

int news_capacity() { return Max(1024, 2 * MaxBackends); }

Layout shared_layout() {
    Layout layout;
    Size offset = MAXALIGN(sizeof(SharedState));
    layout.rule_sieves = offset;
    offset = add_size(offset, MAXALIGN(mul_size(setting_max_rules, sizeof(core::RuleSieve))));
    layout.slot_tags = offset;
    offset = add_size(offset, MAXALIGN(mul_size((1 + core::kKeptPlaces) * MaxBackends, sizeof(core::SlotTags))));
    layout.counters = offset;
    offset = add_size(offset, MAXALIGN(mul_size(2 * setting_max_rules + 1, sizeof(core::RuleCounters))));
    layout.rules = offset;
    offset = add_size(offset, MAXALIGN(mul_size(setting_max_rules, sizeof(core::CompiledRule))));
    layout.slots = offset;
    offset = add_size(offset, MAXALIGN(mul_size((1 + core::kKeptPlaces) * MaxBackends, sizeof(core::SessionSlot))));
    layout.endings = offset;
    offset = add_size(offset, MAXALIGN(mul_size(MaxBackends, sizeof(EndingNotice))));
    layout.events = offset;
    offset = add_size(offset, MAXALIGN(mul_size(setting_event_log_size, sizeof(core::Event))));
    layout.history = offset;
    offset = add_size(offset, MAXALIGN(mul_size(setting_history_size, sizeof(core::HistorySample))));
    layout.group_tags = offset;
    offset = add_size(offset, MAXALIGN(mul_size(setting_pool_advice_groups, sizeof(std::uint32_t))));
    layout.groups = offset;
    offset = add_size(offset, MAXALIGN(mul_size(setting_pool_advice_groups, sizeof(core::GroupFigures))));
    layout.news = offset;
    offset = add_size(offset, MAXALIGN(mul_size(news_capacity(), sizeof(core::GroupNews))));
    layout.active_entries = offset;
    offset = add_size(offset, MAXALIGN(mul_size(MaxBackends, sizeof(core::ActiveEntry))));
    layout.active_groups = offset;
    offset = add_size(offset, MAXALIGN(mul_size(MaxBackends, sizeof(core::ActiveGroup))));
    layout.login_waiters = offset;
    offset = add_size(offset, MAXALIGN(mul_size(MaxBackends, sizeof(core::LoginWaiter))));
    layout.total = offset;
    return layout;
}

}  // namespace

void note_placement_changed_locked(SharedState* state) {
    pg_atomic_add_fetch_u64(&state->placement_version, 1);
    wake_waiting_logins_locked(state);
}

namespace {

// Makes rules[0 .. count) the rule set in force (a new version). Caller holds the lock
// exclusively, or is the postmaster initialising the block.
void install_rules_locked(SharedState* state, int count, TimestampTz now) {
    int groups = 0;
    int reserving = 0;
    int max_active = 0;
    for (int i = 0; i < count; ++i) {
        groups += state->rules[i].group_name().empty() ? 0 : 1;
        reserving += state->rules[i].min_connections > 0 ? 1 : 0;
        max_active += state->rules[i].max_active > 0 ? 1 : 0;
    }
    core::sieve_rules(state->rules, count, state->rule_sieves);
    state->rule_count = count;
    state->group_rule_count = groups;
    state->reserving_rule_count = reserving;
    state->max_active_rule_count = max_active;
    state->rule_set_version += 1;
    note_placement_changed_locked(state);
    state->rules_loaded_at = now;
    state->last_load.ok = true;
    state->last_load.rule_count = count;
    state->last_load.attempted_at = now;
    state->last_load.error[0] = '\0';
}

void request_shared_memory() {
    if (previous_request_hook != nullptr) previous_request_hook();
    RequestAddinShmemSpace(shared_layout().total);
}

void attach_shared_memory() {
    if (previous_startup_hook != nullptr) previous_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    int restored = 0;
    char why[160] = "";
    const Layout layout = shared_layout();
    auto* state = static_cast<SharedState*>(ShmemInitStruct("pg_connguard", layout.total, &found));
    if (!found) {
        // First start, or a crash restart: everything begins from zero.
        char* base = reinterpret_cast<char*>(state);
        memset(base, 0, layout.total);
        state->lock_tranche = CONNGUARD_NEW_TRANCHE(kTrancheName);
        LWLockInitialize(&state->lock_storage.lock, state->lock_tranche);
        state->lock = &state->lock_storage.lock;
        pg_atomic_init_u64(&state->reload_requested, 0);
        pg_atomic_init_u32(&state->rename_pending, 0);
        pg_atomic_init_u32(&state->loader_paused, 0);
        pg_atomic_init_u64(&state->placement_version, 1);
        LWLockInitialize(&state->active_lock_storage.lock, state->lock_tranche);
        state->active_lock = &state->active_lock_storage.lock;
        state->rule_capacity = setting_max_rules;
        state->rules = reinterpret_cast<core::CompiledRule*>(base + layout.rules);
        state->rule_sieves = reinterpret_cast<core::RuleSieve*>(base + layout.rule_sieves);
        state->slot_count = MaxBackends;
        state->slots = reinterpret_cast<core::SessionSlot*>(base + layout.slots);
        state->slot_tags = reinterpret_cast<core::SlotTags*>(base + layout.slot_tags);
        state->endings = reinterpret_cast<EndingNotice*>(base + layout.endings);
        state->counter_capacity = 2 * setting_max_rules + 1;
        state->counters = reinterpret_cast<core::RuleCounters*>(base + layout.counters);
        state->event_capacity = setting_event_log_size;
        state->events = reinterpret_cast<core::Event*>(base + layout.events);
        state->history_capacity = setting_history_size;
        state->history = reinterpret_cast<core::HistorySample*>(base + layout.history);
        state->group_capacity = setting_pool_advice_groups;
        state->groups = reinterpret_cast<core::GroupFigures*>(base + layout.groups);
        state->group_tags = reinterpret_cast<std::uint32_t*>(base + layout.group_tags);
        state->news_capacity = news_capacity();
        state->news = reinterpret_cast<core::GroupNews*>(base + layout.news);
        state->active_entries = reinterpret_cast<core::ActiveEntry*>(base + layout.active_entries);
        state->active_groups = reinterpret_cast<core::ActiveGroup*>(base + layout.active_groups);
        state->login_waiters = reinterpret_cast<core::LoginWaiter*>(base + layout.login_waiters);
        core::reset_active_table(active_table(state));
        state->stats_reset_at = GetCurrentTimestamp();
        restored = read_rule_file(state->rules, state->rule_capacity, why, sizeof why);
        if (restored > 0) {
            install_rules_locked(state, restored, state->stats_reset_at);
        } else {
            memset(static_cast<void*>(state->rules), 0, sizeof(core::CompiledRule) * state->rule_capacity);
        }
    }
    LWLockRelease(AddinShmemInitLock);
    // The tranche's name, for wait events in pg_stat_activity (see compat.h).
    CONNGUARD_NAME_TRANCHE(state->lock_tranche, kTrancheName);
    attached = state;
    // The caps hold from the first login: the last rule set in force before this start (or
    // crash restart) is in force until the rules loader has read connguard.rules.
    if (restored > 0) {
        char detail[160];
        snprintf(detail, sizeof detail, "%d rules restored from %s at server start", restored, kRuleFileName);
        record_rules_event(state, core::EventKind::kRulesLoaded, detail);
        ereport(LOG, (errmsg("pg_connguard: %s", detail)));
    } else if (restored < 0) {
        ereport(LOG, (errmsg("pg_connguard: not restoring the rules from \"%s\": %s", kRuleFileName, why),
                      errdetail("Until the rules loader has read connguard.rules, no rule is in force.")));
    }
}

}  // namespace

void install_shared_state_hooks() {
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = request_shared_memory;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = attach_shared_memory;
}

SharedState* shared_state() { return attached; }

SharedState* require_shared_state() {
    if (attached == nullptr) {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("pg_connguard is not loaded through shared_preload_libraries"),
                        errhint("Add pg_connguard to shared_preload_libraries in postgresql.conf and restart the "
                                "server.")));
    }
    return attached;
}

std::uint64_t request_rule_reload(SharedState* state) {
    const std::uint64_t generation = pg_atomic_add_fetch_u64(&state->reload_requested, 1);
    LWLockAcquire(state->lock, LW_SHARED);
    Latch* latch = state->worker_latch;
    if (latch != nullptr) SetLatch(latch);
    LWLockRelease(state->lock);
    return generation;
}

bool publish_rules(SharedState* state, std::uint64_t generation, const core::CompiledRule* rules, int count,
                   const char* no_rules_reason) {
    const TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    const bool newer = generation > state->published_generation;
    if (newer) {
        if (count > 0) memcpy(static_cast<void*>(state->rules), rules, sizeof(core::CompiledRule) * count);
        strlcpy(state->no_rules_reason, no_rules_reason != nullptr ? no_rules_reason : "",
                sizeof state->no_rules_reason);
        install_rules_locked(state, count, now);
        state->published_generation = generation;
        state->last_load.generation = Max(state->last_load.generation, generation);
    }
    LWLockRelease(state->lock);
    return newer;
}

bool record_failed_load(SharedState* state, std::uint64_t generation, const char* error, std::uint64_t* version,
                        int* count) {
    const TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    const bool unanswered = state->last_load.generation < generation;
    if (unanswered) {
        state->last_load.generation = generation;
        state->last_load.ok = false;
        state->last_load.rule_count = state->rule_count;
        state->last_load.attempted_at = now;
        strlcpy(state->last_load.error, error, sizeof state->last_load.error);
    }
    *version = state->rule_set_version;
    *count = state->rule_count;
    LWLockRelease(state->lock);
    return unanswered;
}

}  // namespace connguard::pg
