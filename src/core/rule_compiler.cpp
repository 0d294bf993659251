#include "rule_compiler.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>

#include "classifier.h"

namespace connguard::core {
namespace {

// The length in bytes of the control character that starts text[at], or 0 if none does:
// ASCII controls and DEL, C1 controls, and the Unicode line, paragraph and format controls
// that change how text is shown (separators, zero-width and bidirectional marks, overrides
// and isolates, the byte order mark). UTF-8 is decoded; an invalid sequence is no control.
std::size_t control_length(std::string_view text, std::size_t at) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    if (lead < 0x20 || lead == 0x7F) return 1;
    std::size_t length = 0;
    char32_t code = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        code = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        code = lead & 0x0F;
    } else {
        return 0;  // ASCII, a continuation byte, or a 4-byte sequence (no control among them)
    }
    if (at + length > text.size()) return 0;
    for (std::size_t i = 1; i < length; ++i) {
        if ((byte(at + i) & 0xC0) != 0x80) return 0;
        code = (code << 6) | (byte(at + i) & 0x3F);
    }
    const bool control = (code >= 0x80 && code <= 0x9F) || code == 0xAD || code == 0x61C || code == 0x180E ||
                         (code >= 0x200B && code <= 0x200F) || (code >= 0x2028 && code <= 0x202E) ||
                         (code >= 0x2060 && code <= 0x2064) || (code >= 0x2066 && code <= 0x206F) ||
                         code == 0xFEFF || (code >= 0xFFF9 && code <= 0xFFFB);
    return control ? length : 0;
}

bool has_control_character(std::string_view text) noexcept {
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (control_length(text, i) > 0) return true;
    }
    return false;
}

// The text in double quotes for a message: control characters shown as \xNN (their UTF-8
// bytes), and anything past 40 bytes cut at a UTF-8 character boundary and marked with "...".
std::string quoted(std::string_view text) {
    constexpr std::size_t kShown = 40;
    std::size_t shown = std::min(text.size(), kShown);
    while (shown < text.size() && shown > 0 && (static_cast<unsigned char>(text[shown]) & 0xC0) == 0x80) --shown;
    std::string out = "\"";
    for (std::size_t i = 0; i < shown; ++i) {
        const std::size_t control = control_length(text, i);
        for (std::size_t k = 0; k < control; ++k) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\x%02X", static_cast<unsigned char>(text[i + k]));
            out += escaped;
        }
        if (control > 0) {
            i += control - 1;
        } else {
            out += text[i];
        }
    }
    if (shown < text.size()) out += "...";
    return out + "\"";
}

void store_pattern(std::string_view text, PatternField* field) noexcept {
    field->present = true;
    field->length = static_cast<std::uint8_t>(text.size());
    // A default string_view's data() is null, which memcpy may not take even for 0 bytes.
    if (!text.empty()) std::memcpy(field->text, text.data(), text.size());
    field->text[text.size()] = '\0';
}

// any_what names what NULL matches, for the message refusing ''; nullptr when '' is a valid pattern.
RuleError compile_pattern(const char* column, const std::optional<std::string_view>& value, const char* any_what,
                          PatternField* out) {
    if (!value) return {};
    if (value->empty() && any_what != nullptr) {
        return {column, std::string("must not be empty; use NULL to match any ") + any_what};
    }
    std::string why = glob_error(*value);
    if (!why.empty()) return {column, quoted(*value) + ": " + why};
    store_pattern(*value, out);
    return {};
}

RuleError compile_role(const std::optional<std::string_view>& value, CompiledRule* out) {
    if (!value || value->empty() || (*value)[0] != '+') {
        return compile_pattern("role_name", value, "role", &out->role_name);
    }
    const std::string_view group = value->substr(1);
    if (group.empty()) return {"role_name", "\"+\" must be followed by the name of a group role"};
    if (group.size() > kMaxRuleNameBytes) {
        return {"role_name", quoted(*value) + ": a role name is at most " + std::to_string(kMaxRuleNameBytes) + " bytes"};
    }
    if (has_control_character(group)) return {"role_name", quoted(*value) + ": pattern contains a control character"};
    if (group.find_first_of("*?\\[]") != std::string_view::npos) {
        return {"role_name", quoted(*value) + ": a \"+group\" name cannot contain wildcards"};
    }
    store_pattern(*value, &out->role_name);
    out->role_is_group = true;
    return {};
}

RuleError compile_interval(const char* column, const std::optional<std::int64_t>& micros, std::int64_t* out) {
    if (!micros) {
        *out = kUnset;
        return {};
    }
    if (*micros < 0) return {column, "must not be negative (use 0 for never, NULL for the global default)"};
    if (*micros > kMaxIntervalMicros) return {column, "must be at most 10 years"};
    *out = *micros;
    return {};
}

// A core timeout (int milliseconds): NULL leaves the server's, 0 turns it off.
RuleError compile_core_timeout(const char* column, const std::optional<std::int64_t>& micros, std::int64_t* out_ms) {
    *out_ms = kUnset;
    if (!micros) return {};
    if (*micros < 0) return {column, "must not be negative (use 0 to turn it off, NULL to leave the server's)"};
    if (*micros > kMaxCoreTimeoutMicros) return {column, "must be at most 2147483647 ms, PostgreSQL's limit"};
    if (*micros > 0 && *micros < 1000) return {column, "must be at least 1 ms (0 turns it off)"};
    *out_ms = (*micros + 500) / 1000;
    return {};
}

}  // namespace

RuleError compile_rule(const RuleInput& in, CompiledRule* out) {
    // Zero bytes everywhere, padding included, then the defaults: two compilations of the same
    // row are equal byte for byte (an assignment from a temporary may leave padding as it was).
    std::memset(static_cast<void*>(out), 0, sizeof *out);
    new (out) CompiledRule();
    if (!in.rule_name || in.rule_name->empty()) return {"rule_name", "must not be empty"};
    if (in.rule_name->size() > kMaxRuleNameBytes) {
        return {"rule_name", quoted(*in.rule_name) + " is longer than " + std::to_string(kMaxRuleNameBytes) + " bytes"};
    }
    if (has_control_character(*in.rule_name)) {
        return {"rule_name", quoted(*in.rule_name) + " contains a control character"};
    }
    if (*in.rule_name == kDefaultRuleName) {
        return {"rule_name", quoted(*in.rule_name) + " is reserved for the sessions that match no rule"};
    }
    std::memcpy(out->rule_name, in.rule_name->data(), in.rule_name->size());

    if (!in.priority) return {"priority", "must not be NULL"};
    out->priority = *in.priority;

    if (auto e = compile_pattern("database_name", in.database_name, "database", &out->database_name); !e.ok()) return e;
    if (auto e = compile_role(in.role_name, out); !e.ok()) return e;
    if (auto e = compile_pattern("application_name", in.application_name, nullptr, &out->application_name); !e.ok()) {
        return e;
    }

    if (in.client_addr) {
        std::string why = parse_cidr(*in.client_addr, &out->client_addr);
        if (!why.empty()) return {"client_addr", why};
        out->has_client_addr = true;
    }

    if (in.max_connections) {
        if (*in.max_connections < 0) return {"max_connections", "must not be negative (0 refuses every login)"};
        if (*in.max_connections > kMaxConnectionsLimit) {
            return {"max_connections", "must be at most " + std::to_string(kMaxConnectionsLimit)};
        }
        out->max_connections = *in.max_connections;
    }

    if (!in.cap_per) return {"cap_per", "must not be NULL"};
    const auto cap_per = parse_cap_per(*in.cap_per);
    if (!cap_per) {
        return {"cap_per", quoted(*in.cap_per) + " is not one of rule, database, role, application, client_addr"};
    }
    out->cap_per = *cap_per;

    if (auto e = compile_interval("idle_timeout", in.idle_timeout_us, &out->idle_timeout_us); !e.ok()) return e;
    if (auto e = compile_interval("idle_in_transaction_timeout", in.idle_in_transaction_timeout_us,
                                  &out->idle_in_transaction_timeout_us);
        !e.ok()) {
        return e;
    }
    if (auto e = compile_interval("idle_blocker_timeout", in.idle_blocker_timeout_us, &out->idle_blocker_timeout_us);
        !e.ok()) {
        return e;
    }
    if (auto e = compile_interval("max_session_age", in.max_session_age_us, &out->max_session_age_us); !e.ok()) {
        return e;
    }

    if (!in.mode) return {"mode", "must not be NULL"};
    const auto mode = parse_mode(*in.mode);
    if (!mode) return {"mode", quoted(*in.mode) + " is not one of enforce, monitor, exempt"};
    out->mode = *mode;

    if (!in.enabled) return {"enabled", "must not be NULL"};
    out->enabled = *in.enabled;
    out->pooler = in.pooler.value_or(false);

    if (auto e = compile_interval("max_transaction_time", in.max_transaction_time_us, &out->max_transaction_time_us);
        !e.ok()) {
        return e;
    }
    if (in.action) {
        const auto action = parse_time_action(*in.action);
        if (!action) return {"action", quoted(*in.action) + " is not one of terminate, cancel"};
        out->action = *action;
    }
    if (auto e = compile_core_timeout("statement_timeout", in.statement_timeout_us, &out->statement_timeout_ms); !e.ok()) {
        return e;
    }
    if (auto e = compile_core_timeout("lock_timeout", in.lock_timeout_us, &out->lock_timeout_ms); !e.ok()) return e;
    if (in.max_active) {
        if (*in.max_active < 1) return {"max_active", "must be at least 1 (NULL for no limit)"};
        if (*in.max_active > kMaxConnectionsLimit) {
            return {"max_active", "must be at most " + std::to_string(kMaxConnectionsLimit)};
        }
        out->max_active = *in.max_active;
    }
    if (in.min_connections) {
        if (*in.min_connections < 0) return {"min_connections", "must not be negative (NULL reserves nothing)"};
        if (out->max_connections >= 0 && *in.min_connections > out->max_connections) {
            return {"min_connections", "must be at most max_connections (" + std::to_string(out->max_connections) + ")"};
        }
        if (*in.min_connections > kMaxConnectionsLimit) {
            return {"min_connections", "must be at most " + std::to_string(kMaxConnectionsLimit)};
        }
        if (*in.min_connections > 0 && out->cap_per != CapPer::kRule) {
            return {"min_connections", "needs cap_per = 'rule': places are reserved for the rule's sessions as one group"};
        }
        if (*in.min_connections > 0 && out->mode == Mode::kExempt) {
            return {"min_connections", "an exempt rule's sessions are not counted, so it cannot reserve places"};
        }
        out->min_connections = *in.min_connections;
    }
    if (in.active_wait_us && *in.active_wait_us < 0) {
        return {"active_wait", "must not be negative (0 fails at once when every place is taken, NULL for "
                               "connguard.active_wait)"};
    }
    if (auto e = compile_interval("active_wait", in.active_wait_us, &out->active_wait_us); !e.ok()) return e;
    return {};
}

std::string describe_rule_error(const RuleInput& input, const RuleError& error) {
    std::string text = "rule " + quoted(input.rule_name.value_or("")) + ": ";
    if (!error.field.empty()) text += "invalid " + error.field + ": ";
    return text + error.message;
}

CompiledRuleSet compile_rule_set(const std::vector<RuleInput>& rows, std::size_t max_rules) {
    CompiledRuleSet set;
    set.rules.reserve(rows.size());
    for (const RuleInput& row : rows) {
        CompiledRule rule;
        RuleError e = compile_rule(row, &rule);
        if (!e.ok()) {
            set.rules.clear();
            set.error = describe_rule_error(row, e);
            return set;
        }
        if (rule.enabled) {
            set.rules.push_back(rule);
        } else {
            ++set.disabled;
        }
    }
    if (set.rules.size() > max_rules) {
        set.error = std::to_string(set.rules.size()) + " enabled rules exceed connguard.max_rules = " +
                    std::to_string(max_rules) + "; raise it (needs a restart) or disable some rules";
        set.rules.clear();
        return set;
    }
    sort_rules(set.rules.data(), set.rules.size());
    return set;
}

}  // namespace connguard::core
