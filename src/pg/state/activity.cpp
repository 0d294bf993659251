#include "pg/state/activity.h"

#include "pg/state/group_figures.h"

extern "C" {
#include "storage/latch.h"
}

namespace connguard::pg {
namespace {

void copy_clipped(char* target, std::size_t size, std::string_view value) {
    const std::size_t n = Min(value.size(), size - 1);
    memcpy(target, value.data(), n);
    target[n] = '\0';
}

// Counters are kept for the rules in force and the default row; see core::CountersNeeded.
bool counters_needed(const char* rule_name, const void* context) {
    const auto* state = static_cast<const SharedState*>(context);
    return strcmp(rule_name, core::kDefaultRuleName) == 0 ||
           core::rule_named(state->rules, state->rule_count, rule_name) != nullptr;
}

core::RuleCounters* counters_of_locked(SharedState* state, const char* rule_name) {
    return core::find_or_add_counters(state->counters, state->counter_capacity, rule_name, counters_needed, state);
}

// What an event about a session tells its group's figures.
core::GroupNewsKind group_news_kind(core::EventKind kind) {
    switch (kind) {
        case core::EventKind::kRejected: return core::GroupNewsKind::kRefused;
        case core::EventKind::kWouldReject: return core::GroupNewsKind::kWouldRefuse;
        case core::EventKind::kWouldTerminate: return core::GroupNewsKind::kWouldEnd;
        default: return core::GroupNewsKind::kEnded;
    }
}

}  // namespace

void reset_counters_locked(SharedState* state) {
    core::reset_counters(state->counters, state->counter_capacity, counters_needed, state);
}

void count_login_locked(SharedState* state, const char* rule_name, const core::AdmissionDecision& decision,
                        double check_seconds) {
    ++state->login_checks;
    state->login_check_seconds += check_seconds;
    if (decision.verdict == core::Verdict::kReject) {
        ++state->total_rejected;
    } else {
        ++state->total_connects;
    }
    if (!decision.counted) return;
    core::RuleCounters* counters = counters_of_locked(state, rule_name);
    if (counters == nullptr) return;
    switch (decision.verdict) {
        case core::Verdict::kAdmit: ++counters->admitted; break;
        case core::Verdict::kReject: ++counters->rejected; break;
        case core::Verdict::kWouldReject:
            ++counters->admitted;
            ++counters->would_reject;
            break;
    }
    if (decision.verdict != core::Verdict::kReject) counters->peak = Max(counters->peak, decision.rule_sessions + 1);
}

void count_termination(SharedState* state, const char* rule_name, core::EventReason reason, bool would,
                       bool cancel) {
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    if (core::RuleCounters* c = counters_of_locked(state, rule_name)) {
        if (would) {
            ++c->would_terminate;
        } else if (cancel) {
            ++c->cancelled;
        } else {
            ++c->terminated[static_cast<int>(reason)];
        }
    }
    if (!would && !cancel) ++state->total_terminated;
    LWLockRelease(state->lock);
}

void count_active_wait(SharedState* state, const char* rule_name, ActiveWaitEnd end, std::int64_t waited_us) {
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    if (core::RuleCounters* c = counters_of_locked(state, rule_name)) {
        ++c->active_waits;
        c->active_wait_us += static_cast<std::uint64_t>(Max(waited_us, static_cast<std::int64_t>(0)));
        ++c->active_wait_buckets[core::active_wait_bucket(waited_us)];
        if (end == ActiveWaitEnd::kTimeout) ++c->active_wait_timeouts;
        if (end == ActiveWaitEnd::kDeadlock) ++c->active_wait_deadlocks;
    }
    LWLockRelease(state->lock);
}

void count_login_queue_locked(SharedState* state, const char* rule_name, LoginQueueEnd end, std::int64_t waited_us,
                              std::int64_t wake_us) {
    if (end != LoginQueueEnd::kQueueFull) ++state->total_login_waits;
    core::RuleCounters* c = counters_of_locked(state, rule_name);
    if (c == nullptr) return;
    c->login_wait_us += static_cast<std::uint64_t>(Max(waited_us, static_cast<std::int64_t>(0)));
    if (end == LoginQueueEnd::kAdmitted && wake_us >= 0) {
        c->login_wake_us += static_cast<std::uint64_t>(wake_us);
        ++c->login_wake_buckets[core::login_wake_bucket(wake_us)];
    }
    switch (end) {
        case LoginQueueEnd::kAdmitted: ++c->login_waits; ++c->login_wait_admitted; break;
        case LoginQueueEnd::kRefused: ++c->login_waits; ++c->login_wait_rejected; break;
        case LoginQueueEnd::kQueueFull: ++c->login_queue_full; break;
    }
}

void count_would_wait(SharedState* state, const char* rule_name) {
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    if (core::RuleCounters* c = counters_of_locked(state, rule_name)) ++c->would_wait;
    LWLockRelease(state->lock);
}

void count_rename_refusal(SharedState* state, const char* rule_name, bool would) {
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    if (core::RuleCounters* c = counters_of_locked(state, rule_name)) {
        if (would) {
            ++c->would_reject;
        } else {
            ++c->rejected;
        }
    }
    if (!would) ++state->total_rejected;
    LWLockRelease(state->lock);
}

void record_rules_event(SharedState* state, core::EventKind kind, const char* detail) {
    record_event(state, kind, core::EventReason::kNone, 0, core::SessionKey{}, "", detail);
}

void record_event(SharedState* state, core::EventKind kind, core::EventReason reason, int pid,
                  const core::SessionKey& session, const char* rule_name, const char* detail, std::int64_t in_state_us) {
    core::Event event;
    memset(static_cast<void*>(&event), 0, sizeof event);
    event.time = GetCurrentTimestamp();
    event.kind = kind;
    event.reason = reason;
    event.pid = pid;
    copy_clipped(event.database, sizeof event.database, session.database);
    copy_clipped(event.role, sizeof event.role, session.role);
    copy_clipped(event.application, sizeof event.application, session.application);
    event.has_client_addr = session.client_addr != nullptr;
    if (session.client_addr != nullptr) event.client_addr = *session.client_addr;
    strlcpy(event.rule_name, rule_name, sizeof event.rule_name);
    strlcpy(event.detail, detail, sizeof event.detail);
    Latch* wake = nullptr;
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    core::ring_push(state->events, state->event_capacity, &state->events_written, event);
    const bool ends_nothing = kind == core::EventKind::kCancelled || kind == core::EventKind::kWouldCancel ||
                              reason == core::EventReason::kMaxActive;
    if (pid != 0 && !ends_nothing) {
        wake = leave_group_news_locked(state, group_news_kind(kind), reason, in_state_us, event.database, event.role,
                                       event.application);
    }
    LWLockRelease(state->lock);
    if (wake != nullptr) SetLatch(wake);
}

}  // namespace connguard::pg
