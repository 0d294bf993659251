// connguard.pool_advice's judgement of one application group: a recommended cap from its
// observed peak of active sessions with headroom (its peak of sessions when it is not
// pooling; at least its cap with headroom when it is starved), and findings (not pooling, leak
// suspected, long transactions, oversized pool, starved, logins wait, idle majority, saturates
// the server), each with its evidence in words and numbers. The thresholds are connguard.advice_* settings.
#pragma once
#include "no_postgres.h"

#include <cstdint>
#include <string>
#include <vector>

#include "group_figures.h"

namespace connguard::core {

struct AdviceThresholds {
    std::int32_t headroom_pct = 25;          // recommended cap = peak active x (1 + headroom)
    std::int32_t min_sessions = 5;           // oversized pool and idle majority need this peak of sessions
    std::int32_t churn_logins_per_minute = 60;  // not pooling: at least this many logins a minute ...
    std::int64_t churn_lifetime_us = 1000000;   // ... and a median session no longer than this
    std::int32_t leak_endings = 1;           // leak suspected: this many ended idle in transaction
    std::int32_t oversized_factor = 2;       // oversized pool: a peak of sessions this many times the recommended cap
    std::int32_t starved_refusals = 1;       // starved: this many logins or renames refused
    std::int32_t idle_majority_pct = 50;     // idle majority: this share of session time idle
    std::int32_t cores = 0;                  // the server's CPU cores (0: unknown, no max_active advice)
    std::int32_t login_waits = 5;            // logins wait: at least this many logins waited in the login queue ...
    std::int32_t login_wait_pct = 5;         // ... and at least this share of its logins
};

struct Finding {
    std::string name;      // "not pooling", "leak suspected", "long transactions", "oversized pool", "starved",
                           // "logins wait", "saturates the server", "idle majority"
    std::string evidence;  // words and numbers
};

struct Advice {
    std::int32_t recommended_cap = -1;  // -1: nothing sampled yet
    // For a group whose active sessions alone reached the server's cores ("saturates the
    // server"): a max_active that leaves one core to the others (1 on a one-core server); -1: none.
    std::int32_t recommended_max_active = -1;
    std::vector<Finding> findings;
};

// `cap`: the cap the group's rule gives it (-1 for none).
Advice advise(const GroupSummary& summary, std::int32_t cap, const AdviceThresholds& thresholds);

// "80 ms", "2.5 s", "31 min", "3.2 h".
std::string duration_words(std::int64_t us);

}  // namespace connguard::core
