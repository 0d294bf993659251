#include "pool_advice.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace connguard::core {
namespace {

std::string format(const char* pattern, ...) __attribute__((format(printf, 1, 2)));

std::string format(const char* pattern, ...) {
    char buffer[320];
    va_list args;
    va_start(args, pattern);
    std::vsnprintf(buffer, sizeof buffer, pattern, args);
    va_end(args);
    return buffer;
}

std::string plural(std::uint64_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string pct_words(double pct) { return format("%.0f %%", pct); }

std::uint64_t leaks(const std::uint64_t* ended) {
    return ended[static_cast<int>(EventReason::kIdleInTransaction)] + ended[static_cast<int>(EventReason::kIdleBlocker)];
}

// "3 sessions ended for <why> and 2 would have been (monitor mode or dry run)".
std::string ended_words(std::uint64_t ended, std::uint64_t would, const char* why) {
    std::string words;
    if (ended > 0) words = plural(ended, "session", "sessions") + " ended " + why;
    if (would > 0) {
        if (!words.empty()) words += " and ";
        words += plural(would, "session", "sessions") + " would have been (monitor mode or dry run)";
    }
    return words;
}

}  // namespace

std::string duration_words(std::int64_t us) {
    const double s = static_cast<double>(us) / 1e6;
    if (us < 1000) return format("%lld µs", static_cast<long long>(us));
    if (s < 1) return format("%.0f ms", s * 1000);
    if (s < 60) return format(s < 10 ? "%.1f s" : "%.0f s", s);
    if (s < 3600) return format("%.0f min", s / 60);
    return format(s < 36000 ? "%.1f h" : "%.0f h", s / 3600);
}

std::int32_t with_headroom(std::int32_t sessions, std::int32_t headroom_pct) {
    const double wanted = std::ceil(static_cast<double>(sessions) * (100.0 + headroom_pct) / 100.0);
    return std::max(1, static_cast<std::int32_t>(wanted));
}

Advice advise(const GroupSummary& g, std::int32_t cap, const AdviceThresholds& t) {
    Advice advice;
    const bool not_pooling = g.lifetimes > 0 && g.logins_per_minute >= t.churn_logins_per_minute &&
                             g.median_lifetime_us <= t.churn_lifetime_us;
    const std::uint64_t refusals = g.refused + g.would_refuse;
    const bool starved = refusals >= static_cast<std::uint64_t>(std::max(t.starved_refusals, 1));
    if (g.samples > 0) {
        // Sessions shorter than the sampling interval are busy while they last, but a sample
        // rarely catches them: for a group not pooling, its peak of sessions is the concurrency.
        advice.recommended_cap = with_headroom(not_pooling ? std::max(g.peak_active, g.peak_sessions) : g.peak_active,
                                               t.headroom_pct);
        // A starved group wanted more than its cap: never advise less than the cap and headroom.
        if (starved && cap >= 0) advice.recommended_cap = std::max(advice.recommended_cap, with_headroom(cap, t.headroom_pct));
    }
    const std::string window = "in the last " + duration_words(std::max<std::int64_t>(g.covered_us, 1000000));

    if (not_pooling) {
        advice.findings.push_back(
            {"not pooling", format("%.0f logins/min over the last hour, median session %s or less: a pool (or Django "
                                   "CONN_MAX_AGE) would save a backend start per login",
                                   g.logins_per_minute, duration_words(g.median_lifetime_us).c_str())});
    }

    const std::uint64_t ended_leaks = leaks(g.ended);
    const std::uint64_t would_leaks = leaks(g.would_end);
    if (ended_leaks + would_leaks >= static_cast<std::uint64_t>(std::max(t.leak_endings, 1))) {
        std::string words = ended_words(ended_leaks, would_leaks, "idle in transaction");
        words += " " + window + ", the longest after " + duration_words(g.longest_leak_us) +
                 ": a code path leaves transactions open (a missing commit, rollback or close)";
        advice.findings.push_back({"leak suspected", words});
    }

    // Transactions its rule's max_transaction_time ended (or would have): work that runs
    // longer than the rule allows, busy or idle.
    const std::uint64_t ended_long = g.ended[static_cast<int>(EventReason::kTransactionTime)];
    const std::uint64_t would_long = g.would_end[static_cast<int>(EventReason::kTransactionTime)];
    if (ended_long + would_long > 0) {
        std::string words = ended_words(ended_long, would_long, "for a transaction open past max_transaction_time");
        words += " " + window + ": its transactions run longer than its rule allows (a slow statement, a batch in one "
                 "transaction, or a missing commit)";
        advice.findings.push_back({"long transactions", words});
    }

    if (advice.recommended_cap > 0 && g.peak_sessions >= t.min_sessions &&
        g.peak_sessions >= static_cast<std::int64_t>(t.oversized_factor) * advice.recommended_cap) {
        advice.findings.push_back(
            {"oversized pool", format("%d sessions held, at most %d active %s (95th percentile %d): a pool of %d "
                                      "would do",
                                      g.peak_sessions, g.peak_active, window.c_str(), g.p95_active,
                                      advice.recommended_cap)});
    }

    if (starved) {
        std::string words = plural(g.refused, "login or rename", "logins or renames") + " refused";
        if (g.would_refuse > 0) words += format(" (%llu more would have been)", static_cast<unsigned long long>(g.would_refuse));
        words += " " + window;
        if (g.at_cap_pct >= 0) words += ", the cap" + (cap >= 0 ? format(" (%d)", cap) : std::string()) +
                                        " full for " + pct_words(g.at_cap_pct) + " of the samples";
        words += ": the application wants more sessions than its cap allows";
        advice.findings.push_back({"starved", words});
    }

    // Logins that met a full cap and waited for a place (connguard.login_wait): each holds a
    // backend slot while it waits, and its client a request.
    if (g.login_waits >= static_cast<std::uint64_t>(std::max(t.login_waits, 1)) &&
        static_cast<double>(g.login_waits) * 100.0 >= static_cast<double>(t.login_wait_pct) * static_cast<double>(g.logins + g.refused)) {
        const std::uint64_t tried = std::max<std::uint64_t>(g.logins + g.refused, g.login_waits);
        advice.findings.push_back(
            {"logins wait",
             format("%llu of %llu logins (%s) %s found the cap full and waited for a place, %s on average: the "
                    "application opens connections faster than its sessions leave; a pool that keeps its "
                    "connections, or a cap with room for its peak, spares the wait",
                    static_cast<unsigned long long>(g.login_waits), static_cast<unsigned long long>(tried),
                    pct_words(100.0 * static_cast<double>(g.login_waits) / static_cast<double>(tried)).c_str(),
                    window.c_str(),
                    duration_words(g.login_wait_us / static_cast<std::int64_t>(g.login_waits)).c_str())});
    }

    if (t.cores > 0 && g.samples > 0 && g.peak_active >= t.cores) {
        advice.recommended_max_active = std::max(t.cores - 1, 1);
        advice.findings.push_back(
            {"saturates the server",
             format("%d sessions active at once at its peak %s (95th percentile %d) on a server of %d cores: its "
                    "transactions alone can take every core; max_active = %d leaves one to the others",
                    g.peak_active, window.c_str(), g.p95_active, t.cores, advice.recommended_max_active)});
    }

    if (g.idle_pct >= t.idle_majority_pct && g.peak_sessions >= t.min_sessions) {
        advice.findings.push_back(
            {"idle majority", format("on average %s of its sessions idle %s (peak %d sessions, %d active)",
                                     pct_words(g.idle_pct).c_str(), window.c_str(), g.peak_sessions, g.peak_active)});
    }
    return advice;
}

}  // namespace connguard::core
