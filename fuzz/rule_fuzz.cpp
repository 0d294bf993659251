// Fuzzes rule validation, src/core/rule_compiler.h and src/core/rule.h: compile_rule,
// compile_rule_set, describe_rule_error, parse_mode and parse_cap_per, and the classifier
// (src/core/classifier.h, src/core/rule_sieve.h) on the rules compiled.
//
// Input: text lines "column=value" giving the rows of connguard.rules (a missing column is
// NULL; integers in decimal, saturated to their type; enabled=t/f; a line "column" without
// '=' is an empty text whose data() is null, as a default std::string_view's), rows
// separated by a line "--"; a line "max_rules=N" for compile_rule_set; and lines
// session_database=, session_role=, session_application=, session_addr=, session_group=
// (repeatable: a group the session's role belongs to) describing a login to classify.
//
// Invariants (a violation aborts through __builtin_trap):
//  - compile_rule refuses a row when one of its columns breaks a rule of the contract,
//    naming the first such column (in compilation order) and saying why; beyond those rules
//    it may only refuse a non-ASCII rule or group name (Unicode controls) and the reserved
//    name "(default)"; an accepted row compiles to exactly its values (patterns, network,
//    limits, cap_per and mode names round-tripping through cap_per_name and mode_name);
//  - parse_mode and parse_cap_per accept exactly the names mode_name and cap_per_name give;
//  - describe_rule_error never throws, whatever the row and the error, and quotes the
//    error's message;
//  - compile_rule_set refuses the set with the first bad row's description, or when more
//    rules are enabled than max_rules, and otherwise returns the enabled rules sorted by
//    (priority, rule_name) and counts the disabled ones;
//  - classifying the login: a rule that matches passes its sieve, and classify returns
//    the first enabled rule that matches.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/classifier.h"
#include "core/rule_compiler.h"
#include "core/rule_sieve.h"

#include "fuzz_support.h"

using namespace connguard;
using namespace connguard::core;

namespace {

void require(bool condition, const char* what) { fuzz::require(condition, "rule", what); }

constexpr std::size_t kMaxRows = 32;

std::optional<std::int64_t> parse_integer(std::string_view text) {
    std::size_t i = 0;
    const bool negative = !text.empty() && text[0] == '-';
    if (negative || (!text.empty() && text[0] == '+')) ++i;
    if (i == text.size()) return std::nullopt;
    std::int64_t value = 0;
    for (; i < text.size(); ++i) {
        if (text[i] < '0' || text[i] > '9') return std::nullopt;
        const int digit = text[i] - '0';
        if (!negative && value > (std::numeric_limits<std::int64_t>::max() - digit) / 10) {
            return std::numeric_limits<std::int64_t>::max();
        }
        if (negative && value < (std::numeric_limits<std::int64_t>::min() + digit) / 10) {
            return std::numeric_limits<std::int64_t>::min();
        }
        value = value * 10 + (negative ? -digit : digit);
    }
    return value;
}

std::optional<std::int32_t> parse_int32(std::string_view text) {
    const auto value = parse_integer(text);
    if (!value) return std::nullopt;
    if (*value > std::numeric_limits<std::int32_t>::max()) return std::numeric_limits<std::int32_t>::max();
    if (*value < std::numeric_limits<std::int32_t>::min()) return std::numeric_limits<std::int32_t>::min();
    return static_cast<std::int32_t>(*value);
}

std::optional<bool> parse_bool(std::string_view text) {
    if (text.empty() || (text[0] != 't' && text[0] != 'f')) return std::nullopt;
    return text[0] == 't';
}

// connguard.max_rules: 256 unless given, kept to 0..1000 so a set can exceed it.
std::size_t parse_max_rules(std::string_view text) {
    return static_cast<std::size_t>(std::clamp<std::int64_t>(parse_integer(text).value_or(256), 0, 1000));
}

struct Session {
    std::string_view database, role, application;
    std::optional<IpAddress> address;
    std::vector<std::string_view> groups;
};

struct Input {
    std::vector<RuleInput> rows;
    std::size_t max_rules = 256;
    Session session;
};

// Views point into the fuzz input, which outlives the Input.
Input parse_input(std::string_view text) {
    Input input;
    input.rows.emplace_back();
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        const std::string_view line = text.substr(start, end - start);
        start = end + 1;
        if (line == "--") {
            if (input.rows.size() == kMaxRows) break;
            input.rows.emplace_back();
            continue;
        }
        // A default std::string_view is an empty text too: the API must take it like any other.
        const std::size_t equals = line.find('=');
        const std::string_view key = line.substr(0, equals);
        const std::string_view value = equals == std::string_view::npos ? std::string_view() : line.substr(equals + 1);
        RuleInput& row = input.rows.back();
        if (key == "rule_name") row.rule_name = value;
        else if (key == "priority") row.priority = parse_int32(value);
        else if (key == "database_name") row.database_name = value;
        else if (key == "role_name") row.role_name = value;
        else if (key == "application_name") row.application_name = value;
        else if (key == "client_addr") row.client_addr = value;
        else if (key == "max_connections") row.max_connections = parse_int32(value);
        else if (key == "cap_per") row.cap_per = value;
        else if (key == "idle_timeout") row.idle_timeout_us = parse_integer(value);
        else if (key == "idle_in_transaction_timeout") row.idle_in_transaction_timeout_us = parse_integer(value);
        else if (key == "idle_blocker_timeout") row.idle_blocker_timeout_us = parse_integer(value);
        else if (key == "max_session_age") row.max_session_age_us = parse_integer(value);
        else if (key == "mode") row.mode = value;
        else if (key == "enabled") row.enabled = parse_bool(value);
        else if (key == "max_rules") input.max_rules = parse_max_rules(value);
        else if (key == "session_database") input.session.database = value;
        else if (key == "session_role") input.session.role = value;
        else if (key == "session_application") input.session.application = value;
        else if (key == "session_group") input.session.groups.push_back(value);
        else if (key == "session_addr") {
            IpAddress address;
            if (parse_ip_address(value, &address)) input.session.address = address;
        }
    }
    return input;
}

bool has_control(std::string_view text) {
    for (char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return true;
    }
    return false;
}

bool pattern_ok(const std::optional<std::string_view>& value, bool empty_ok) {
    return !value || ((empty_ok || !value->empty()) && glob_error(*value).empty());
}

bool has_non_ascii(std::string_view text) {
    for (char c : text) {
        if (static_cast<unsigned char>(c) >= 0x80) return true;
    }
    return false;
}

bool is_group_role(const std::optional<std::string_view>& value) {
    return value && !value->empty() && (*value)[0] == '+';
}

bool role_ok(const std::optional<std::string_view>& value) {
    if (!is_group_role(value)) return pattern_ok(value, false);
    const std::string_view group = value->substr(1);
    return !group.empty() && group.size() <= kMaxRuleNameBytes && !has_control(group) &&
           group.find_first_of("*?\\[]") == std::string_view::npos;
}

bool interval_ok(const std::optional<std::int64_t>& micros) {
    return !micros || (*micros >= 0 && *micros <= kMaxIntervalMicros);
}

// The columns in the order compile_rule checks them; "" (accepted) sorts last.
const std::vector<std::string> kColumns = {"rule_name", "priority", "database_name", "role_name", "application_name",
                                           "client_addr", "max_connections", "cap_per", "idle_timeout",
                                           "idle_in_transaction_timeout", "idle_blocker_timeout", "max_session_age",
                                           "mode", "enabled", ""};

std::size_t column_index(const std::string& column) {
    for (std::size_t i = 0; i < kColumns.size(); ++i) {
        if (kColumns[i] == column) return i;
    }
    require(false, "an error names an unknown column");
    return 0;
}

// The first column compile_rule must refuse, by the plain rules of rule_compiler.h's
// contract (ASCII control characters only); "" for none.
std::string first_bad_column(const RuleInput& in) {
    if (!in.rule_name || in.rule_name->empty() || in.rule_name->size() > kMaxRuleNameBytes ||
        has_control(*in.rule_name)) {
        return "rule_name";
    }
    if (!in.priority) return "priority";
    if (!pattern_ok(in.database_name, false)) return "database_name";
    if (!role_ok(in.role_name)) return "role_name";
    if (!pattern_ok(in.application_name, true)) return "application_name";
    Cidr network;
    if (in.client_addr && !parse_cidr(*in.client_addr, &network).empty()) return "client_addr";
    if (in.max_connections && (*in.max_connections < 0 || *in.max_connections > kMaxConnectionsLimit)) {
        return "max_connections";
    }
    if (!in.cap_per || !parse_cap_per(*in.cap_per)) return "cap_per";
    if (!interval_ok(in.idle_timeout_us)) return "idle_timeout";
    if (!interval_ok(in.idle_in_transaction_timeout_us)) return "idle_in_transaction_timeout";
    if (!interval_ok(in.idle_blocker_timeout_us)) return "idle_blocker_timeout";
    if (!interval_ok(in.max_session_age_us)) return "max_session_age";
    if (!in.mode || !parse_mode(*in.mode)) return "mode";
    if (!in.enabled) return "enabled";
    return "";
}

// Columns compile_rule may refuse beyond those rules: names of a rule or of a group role
// holding a Unicode control character (only non-ASCII text can), and the name reserved
// for the sessions no rule matches.
bool may_refuse(const RuleInput& in, const std::string& column) {
    if (column == "rule_name") return has_non_ascii(*in.rule_name) || *in.rule_name == "(default)";
    if (column == "role_name") return is_group_role(in.role_name) && has_non_ascii(*in.role_name);
    return false;
}

void check_refusal(const RuleInput& in, const RuleError& error) {
    const std::string expected = first_bad_column(in);
    if (error.field == expected) return;
    require(column_index(error.field) < column_index(expected) && may_refuse(in, error.field),
            "compile_rule refused another column than the first bad one, or none");
}

void check_pattern(const PatternField& field, const std::optional<std::string_view>& value) {
    require(field.present == value.has_value(), "pattern presence differs from the column's");
    if (value) require(field.view() == *value && field.text[field.length] == '\0', "pattern text differs");
}

void check_interval(std::int64_t compiled, const std::optional<std::int64_t>& micros) {
    require(compiled == micros.value_or(kUnset), "interval differs from the column's");
}

void check_compiled(const RuleInput& in, const CompiledRule& out) {
    require(out.name() == *in.rule_name, "rule name differs");
    require(out.priority == *in.priority, "priority differs");
    check_pattern(out.database_name, in.database_name);
    check_pattern(out.role_name, in.role_name);
    const bool group = is_group_role(in.role_name);
    require(out.role_is_group == group, "role_is_group differs");
    require(out.group_name() == (group ? in.role_name->substr(1) : std::string_view()), "group name differs");
    check_pattern(out.application_name, in.application_name);
    require(out.has_client_addr == in.client_addr.has_value(), "client_addr presence differs");
    if (in.client_addr) {
        Cidr network;
        require(parse_cidr(*in.client_addr, &network).empty(), "client_addr accepted but not a network");
        require(cidr_to_string(out.client_addr) == cidr_to_string(network), "client_addr differs");
    }
    require(out.max_connections == in.max_connections.value_or(-1), "max_connections differs");
    require(cap_per_name(out.cap_per) == *in.cap_per, "cap_per differs");
    check_interval(out.idle_timeout_us, in.idle_timeout_us);
    check_interval(out.idle_in_transaction_timeout_us, in.idle_in_transaction_timeout_us);
    check_interval(out.idle_blocker_timeout_us, in.idle_blocker_timeout_us);
    check_interval(out.max_session_age_us, in.max_session_age_us);
    require(mode_name(out.mode) == *in.mode, "mode differs");
    require(out.enabled == *in.enabled, "enabled differs");
}

bool ends_with(std::string_view text, std::string_view tail) {
    return text.size() >= tail.size() && text.substr(text.size() - tail.size()) == tail;
}

void check_description(const RuleInput& row, const RuleError& error) {
    std::string text;
    try {
        text = describe_rule_error(row, error);
    } catch (...) {
        require(false, "describe_rule_error threw");
    }
    require(text.compare(0, 6, "rule \"") == 0, "description does not start with the rule");
    require(ends_with(text, error.message), "description does not end with the message");
    if (!error.field.empty()) {
        require(text.find("invalid " + error.field + ": ") != std::string::npos, "description lacks the column");
    }
}

void check_names(std::string_view text) {
    const auto mode = parse_mode(text);
    require(mode.has_value() == (text == "enforce" || text == "monitor" || text == "exempt"), "parse_mode");
    if (mode) require(mode_name(*mode) == text, "mode_name(parse_mode(x)) != x");
    const auto cap_per = parse_cap_per(text);
    require(cap_per.has_value() == (text == "rule" || text == "database" || text == "role" ||
                                    text == "application" || text == "client_addr"),
            "parse_cap_per");
    if (cap_per) require(cap_per_name(*cap_per) == text, "cap_per_name(parse_cap_per(x)) != x");
}

bool is_member(std::string_view group, void* context) {
    for (std::string_view member_of : *static_cast<const std::vector<std::string_view>*>(context)) {
        if (member_of == group) return true;
    }
    return false;
}

void check_classification(const std::vector<CompiledRule>& rules, Session& session) {
    std::vector<RuleSieve> sieves(rules.size());
    sieve_rules(rules.data(), rules.size(), sieves.data());
    SessionKey key;
    key.database = session.database;
    key.role = session.role;
    key.application = session.application;
    key.client_addr = session.address ? &*session.address : nullptr;
    key.is_member_of = is_member;
    key.context = &session.groups;
    const SieveKey sieve_key_of_session = sieve_key(session.database, session.role, session.application);
    int first_match = kNoRule;
    for (std::size_t i = 0; i < rules.size(); ++i) {
        if (!rules[i].enabled || !rule_matches(rules[i], key)) continue;
        require(sieve_passes(sieves[i], sieve_key_of_session), "a matching rule does not pass its sieve");
        if (first_match == kNoRule) first_match = static_cast<int>(i);
    }
    require(classify(rules.data(), sieves.data(), rules.size(), key) == first_match,
            "classify is not the first matching rule");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Input input = parse_input(std::string_view(reinterpret_cast<const char*>(data), size));

    std::string first_error;
    std::size_t enabled = 0, disabled = 0;
    for (const RuleInput& row : input.rows) {
        if (row.cap_per) check_names(*row.cap_per);
        if (row.mode) check_names(*row.mode);
        CompiledRule out;
        const RuleError error = compile_rule(row, &out);
        check_refusal(row, error);
        require(error.ok() == error.field.empty(), "an error must name its column and say why");
        check_description(row, error);
        check_description(row, RuleError{std::string(row.mode.value_or("")), std::string(row.cap_per.value_or(""))});
        if (!error.ok()) {
            if (first_error.empty()) first_error = describe_rule_error(row, error);
            continue;
        }
        check_compiled(row, out);
        ++(out.enabled ? enabled : disabled);
    }

    const CompiledRuleSet set = compile_rule_set(input.rows, input.max_rules);
    if (!first_error.empty()) {
        require(set.error == first_error && set.rules.empty(), "a bad row must refuse the set with its description");
        return 0;
    }
    if (enabled > input.max_rules) {
        require(!set.error.empty() && set.rules.empty(), "more enabled rules than max_rules must refuse the set");
        return 0;
    }
    require(set.error.empty(), "a valid set was refused");
    require(set.rules.size() == enabled && set.disabled == disabled, "rule counts differ");
    for (std::size_t i = 0; i < set.rules.size(); ++i) {
        require(set.rules[i].enabled, "a disabled rule in the set");
        if (i == 0) continue;
        const CompiledRule& a = set.rules[i - 1];
        const CompiledRule& b = set.rules[i];
        require(a.priority < b.priority || (a.priority == b.priority && std::strcmp(a.rule_name, b.rule_name) <= 0),
                "rules not in (priority, rule_name) order");
    }
    check_classification(set.rules, input.session);
    return 0;
}
