// The rule model of PRODUCT.md: what a DBA writes (RuleInput, plain views of one row of
// connguard.rules) and what the server enforces (CompiledRule, trivially copyable so the
// compiled rule set can live in shared memory as it is).
#pragma once
#include "no_postgres.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

#include "address.h"
#include "glob.h"

namespace connguard::core {

inline constexpr std::size_t kMaxRuleNameBytes = 63;        // NAMEDATALEN - 1
// Name under which sessions matching no rule are counted and reported; no rule may take it.
inline constexpr const char* kDefaultRuleName = "(default)";
inline constexpr std::int32_t kMaxConnectionsLimit = 262143;  // PostgreSQL's MAX_BACKENDS
inline constexpr std::int64_t kMicrosPerSecond = 1000000;
inline constexpr std::int64_t kMaxIntervalMicros = 3650LL * 86400 * kMicrosPerSecond;  // ten years
// statement_timeout and lock_timeout are int milliseconds in PostgreSQL.
inline constexpr std::int64_t kMaxCoreTimeoutMicros = 2147483647LL * 1000;

enum class CapPer : std::uint8_t { kRule, kDatabase, kRole, kApplication, kClientAddr };
enum class Mode : std::uint8_t { kEnforce, kMonitor, kExempt };
// What max_transaction_time does to a transaction that is running a statement when it passes
// the limit: end the session (core 17's transaction_timeout does) or cancel the statement,
// which aborts the transaction and leaves the session alive. A transaction idle when it
// passes the limit is ended either way: a cancel does nothing to an idle session.
enum class TimeAction : std::uint8_t { kTerminate, kCancel };

// One row of connguard.rules as plain values; a missing optional is SQL NULL.
// Intervals arrive as microseconds (months counted as 30 days, as PostgreSQL does).
struct RuleInput {
    std::optional<std::string_view> rule_name;
    std::optional<std::int32_t> priority;
    std::optional<std::string_view> database_name;
    std::optional<std::string_view> role_name;
    std::optional<std::string_view> application_name;
    std::optional<std::string_view> client_addr;
    std::optional<std::int32_t> max_connections;
    std::optional<std::string_view> cap_per;
    std::optional<std::int64_t> idle_timeout_us;
    std::optional<std::int64_t> idle_in_transaction_timeout_us;
    std::optional<std::int64_t> idle_blocker_timeout_us;
    std::optional<std::int64_t> max_session_age_us;
    std::optional<std::string_view> mode;
    std::optional<bool> enabled;
    std::optional<bool> pooler;  // NULL (or a table without the column) reads as false
    // 1.2's columns; a table of 1.1 has none of them: they read as NULL.
    std::optional<std::int64_t> max_transaction_time_us;
    std::optional<std::string_view> action;  // NULL reads as 'terminate'
    std::optional<std::int64_t> statement_timeout_us;
    std::optional<std::int64_t> lock_timeout_us;
    std::optional<std::int32_t> max_active;
    std::optional<std::int64_t> active_wait_us;
    std::optional<std::int32_t> min_connections;
};

// A pattern field: absent (NULL, matches anything) or a validated glob.
struct PatternField {
    bool present = false;
    std::uint8_t length = 0;
    char text[kMaxPatternBytes + 1] = {};

    std::string_view view() const noexcept { return {text, length}; }
};

// An interval limit: absent (NULL, use the global default) or microseconds (0 = never).
inline constexpr std::int64_t kUnset = -1;

struct CompiledRule {
    char rule_name[kMaxRuleNameBytes + 1] = {};
    std::int32_t priority = 100;
    PatternField database_name;
    PatternField role_name;  // a leading '+' is kept: role_is_group says how to read it
    bool role_is_group = false;
    PatternField application_name;
    bool has_client_addr = false;
    Cidr client_addr;
    std::int32_t max_connections = -1;  // -1: NULL
    std::int64_t idle_timeout_us = kUnset;
    std::int64_t idle_in_transaction_timeout_us = kUnset;
    std::int64_t idle_blocker_timeout_us = kUnset;
    std::int64_t max_session_age_us = kUnset;
    std::int64_t max_transaction_time_us = kUnset;
    // The session's default statement_timeout / lock_timeout, whole milliseconds (kUnset: the
    // server's own), set from login like ALTER ROLE ... IN DATABASE ... SET.
    std::int64_t statement_timeout_ms = kUnset;
    std::int64_t lock_timeout_ms = kUnset;
    // Most sessions of a group inside a transaction at once (-1: no limit), and how long a
    // statement may queue for a place (kUnset: connguard.active_wait; 0: not at all).
    std::int64_t active_wait_us = kUnset;
    std::int32_t max_active = -1;
    // Places kept for the rule's sessions (-1: NULL, none); see reservations.h.
    std::int32_t min_connections = -1;
    // The one-byte fields last, together (less padding; compile_rule zeroes what is left).
    CapPer cap_per = CapPer::kRule;
    Mode mode = Mode::kEnforce;
    bool enabled = true;
    // Its sessions are a pooler's server connections (PgBouncer, pgcat, Odyssey, Pgpool): a
    // session admitted under it keeps this rule and the group it logged in with whatever
    // application_name the pooler sets on each hand-over; a rename is neither refused nor ended.
    bool pooler = false;
    TimeAction action = TimeAction::kTerminate;

    std::string_view name() const noexcept;
    // The group name of a "+group" role_name (without the '+'), empty otherwise.
    std::string_view group_name() const noexcept;
};

static_assert(std::is_trivially_copyable_v<CompiledRule>, "compiled rules are copied into shared memory");

const char* cap_per_name(CapPer value) noexcept;
const char* mode_name(Mode value) noexcept;
const char* time_action_name(TimeAction value) noexcept;
std::optional<CapPer> parse_cap_per(std::string_view text) noexcept;
std::optional<Mode> parse_mode(std::string_view text) noexcept;
std::optional<TimeAction> parse_time_action(std::string_view text) noexcept;

}  // namespace connguard::core
