#include "session_policy.h"

#include <cstdio>
#include <cstring>

#include "admission.h"

namespace connguard::core {

SessionJudgement judge_session(const SessionFacts& facts, const SessionPolicy& policy) noexcept {
    SessionJudgement j;
    if (facts.has_place && facts.rule_name != nullptr && facts.rule_name[0] != '\0') {
        j.rule = rule_named(policy.rules, policy.rule_count, facts.rule_name);
    }
    if (j.rule != nullptr) j.rule_name = j.rule->rule_name;
    const Mode mode = j.rule != nullptr ? j.rule->mode : Mode::kEnforce;
    j.exempt = !facts.has_place || mode == Mode::kExempt || (facts.superuser && policy.exempt_superusers) ||
               facts.role_listed_exempt;
    j.would = policy.dry_run || mode == Mode::kMonitor;
    j.mode = j.exempt ? "exempt" : (policy.dry_run ? "monitor" : mode_name(mode));
    j.limits = limits_for(j.rule, policy.defaults);
    if (!j.exempt) j.deadline = deadline_for(facts.snapshot, j.limits);
    j.cap = group_cap(j.rule, policy.default_cap);
    return j;
}

const char* state_words(SessionState state) noexcept {
    switch (state) {
        case SessionState::kIdle: return "idle";
        case SessionState::kIdleInTransaction: return "idle in transaction";
        case SessionState::kIdleInTransactionAborted: return "idle in transaction (aborted)";
        default: return "active";
    }
}

namespace {

// What the limit measured: the state, or for max_transaction_time the open transaction.
const char* measured_words(SessionState state, EventReason reason) noexcept {
    return reason == EventReason::kTransactionTime ? "transaction open" : state_words(state);
}

}  // namespace

void describe_ending(SessionState state, std::int64_t in_state_us, const Deadline& deadline, const char* rule_name,
                     char* out, std::size_t size) noexcept {
    const char* reason = event_reason_name(deadline.reason);
    std::snprintf(out, size, "%s for %.3f s; %s limit %.3f s (rule \"%s\")", measured_words(state, deadline.reason),
                  static_cast<double>(in_state_us) / 1e6, reason != nullptr ? reason : "no",
                  static_cast<double>(deadline.limit_us) / 1e6, rule_name);
}

EndingWords ending_words(EventReason reason) noexcept {
    switch (reason) {
        case EventReason::kIdle: return {"57P05", "terminating connection due to idle-session timeout"};
        case EventReason::kIdleInTransaction:
        case EventReason::kIdleBlocker: return {"25P03", "terminating connection due to idle-in-transaction timeout"};
        case EventReason::kAge: return {"57P05", "terminating connection due to maximum session age"};
        case EventReason::kCap: return {"53300", "terminating connection due to too many connections"};
        case EventReason::kTransactionTime: return {"25P04", "terminating connection due to transaction timeout"};
        case EventReason::kNone:
        case EventReason::kMaxActive:  // max_active ends no session
        case EventReason::kReserved: break;  // nor do reservations
    }
    return {"57P01", nullptr};
}

EndingWords cancel_words() noexcept { return {"57014", "canceling statement due to transaction timeout"}; }

namespace {

// Seconds as the shortest of "2", "2.5", "2.001".
void seconds_text(std::int64_t us, char* out, std::size_t size) noexcept {
    std::snprintf(out, size, "%.3f", static_cast<double>(us) / 1e6);
    char* end = out + std::strlen(out);
    while (end > out && end[-1] == '0') *--end = '\0';
    if (end > out && end[-1] == '.') end[-1] = '\0';
}

}  // namespace

void client_ending_detail(SessionState state, std::int64_t in_state_us, const Deadline& deadline,
                          const char* rule_name, char* out, std::size_t size) noexcept {
    char limit[32];
    seconds_text(deadline.limit_us, limit, sizeof limit);
    const char* what = deadline.reason == EventReason::kAge               ? "; session age limit "
                       : deadline.reason == EventReason::kTransactionTime ? "; transaction time limit "
                                                                         : "; limit ";
    std::snprintf(out, size, "pg_connguard rule \"%s\": %s for %.3f s%s%s s", rule_name,
                  measured_words(state, deadline.reason),
                  static_cast<double>(in_state_us) / 1e6, what, limit);
}

}  // namespace connguard::core
