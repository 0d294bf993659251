#include "rule_text.h"

#include <charconv>
#include <vector>

namespace connguard::core {
namespace {

constexpr std::string_view kFirstLine = "pg_connguard rule file 1\n";

void put(std::string* out, std::string_view name, std::string_view value) {
    out->append(name).append(" ").append(std::to_string(value.size())).append(":").append(value).append("\n");
}

void put_number(std::string* out, std::string_view name, std::int64_t value) { put(out, name, std::to_string(value)); }

// Reads "<name> <length>:<bytes>\n" or a bare line ("rule", "end") from the front of *rest.
struct Field {
    std::string_view name;
    std::string_view value;
    bool bare = false;
};

bool next_field(std::string_view* rest, Field* field, std::string* error) {
    const std::size_t line_end = rest->find('\n');
    const std::size_t space = rest->find(' ');
    if (line_end == std::string_view::npos) {
        *error = "it ends in the middle of a line";
        return false;
    }
    if (space == std::string_view::npos || space > line_end) {
        *field = Field{rest->substr(0, line_end), {}, true};
        rest->remove_prefix(line_end + 1);
        return true;
    }
    field->name = rest->substr(0, space);
    field->bare = false;
    const char* digits = rest->data() + space + 1;
    const char* end = rest->data() + rest->size();
    std::size_t length = 0;
    const auto [after, code] = std::from_chars(digits, end, length);
    if (code != std::errc() || after == digits || after == end || *after != ':') {
        *error = "field \"" + std::string(field->name) + "\" has no length";
        return false;
    }
    const std::size_t value_at = static_cast<std::size_t>(after + 1 - rest->data());
    if (length > rest->size() - value_at || value_at + length >= rest->size() || (*rest)[value_at + length] != '\n') {
        *error = "field \"" + std::string(field->name) + "\" is cut short";
        return false;
    }
    field->value = rest->substr(value_at, length);
    rest->remove_prefix(value_at + length + 1);
    return true;
}

template <typename T>
bool number(std::string_view text, std::optional<T>* out) {
    T value{};
    const auto [after, code] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (code != std::errc() || after != text.data() + text.size() || text.empty()) return false;
    *out = value;
    return true;
}

// A value kept in milliseconds, read back as the microseconds a rule row gives.
bool milliseconds(std::string_view text, std::optional<std::int64_t>* out) {
    std::optional<std::int64_t> ms;
    if (!number(text, &ms) || *ms < 0 || *ms > kMaxCoreTimeoutMicros / 1000) return false;
    *out = *ms * 1000;
    return true;
}

bool boolean(std::string_view text, std::optional<bool>* out) {
    if (text != "t" && text != "f") return false;
    *out = text == "t";
    return true;
}

// Sets the column `name` of *in; false for a name this build does not know or a bad value.
bool set_column(RuleInput* in, std::string_view name, std::string_view value) {
    if (name == "rule_name") return in->rule_name = value, true;
    if (name == "priority") return number(value, &in->priority);
    if (name == "database_name") return in->database_name = value, true;
    if (name == "role_name") return in->role_name = value, true;
    if (name == "application_name") return in->application_name = value, true;
    if (name == "client_addr") return in->client_addr = value, true;
    if (name == "max_connections") return number(value, &in->max_connections);
    if (name == "cap_per") return in->cap_per = value, true;
    if (name == "idle_timeout_us") return number(value, &in->idle_timeout_us);
    if (name == "idle_in_transaction_timeout_us") return number(value, &in->idle_in_transaction_timeout_us);
    if (name == "idle_blocker_timeout_us") return number(value, &in->idle_blocker_timeout_us);
    if (name == "max_session_age_us") return number(value, &in->max_session_age_us);
    if (name == "mode") return in->mode = value, true;
    if (name == "enabled") return boolean(value, &in->enabled);
    if (name == "pooler") return boolean(value, &in->pooler);
    if (name == "max_transaction_time_us") return number(value, &in->max_transaction_time_us);
    if (name == "action") return in->action = value, true;
    if (name == "statement_timeout_ms") return milliseconds(value, &in->statement_timeout_us);
    if (name == "lock_timeout_ms") return milliseconds(value, &in->lock_timeout_us);
    if (name == "max_active") return number(value, &in->max_active);
    if (name == "active_wait_us") return number(value, &in->active_wait_us);
    if (name == "min_connections") return number(value, &in->min_connections);
    return false;
}

}  // namespace

std::string encode_rule_set(const CompiledRule* rules, std::size_t count) {
    std::string out(kFirstLine);
    for (std::size_t i = 0; i < count; ++i) {
        const CompiledRule& r = rules[i];
        out.append("rule\n");
        put(&out, "rule_name", r.rule_name);
        put_number(&out, "priority", r.priority);
        if (r.database_name.present) put(&out, "database_name", r.database_name.view());
        if (r.role_name.present) put(&out, "role_name", r.role_name.view());
        if (r.application_name.present) put(&out, "application_name", r.application_name.view());
        if (r.has_client_addr) put(&out, "client_addr", cidr_to_string(r.client_addr));
        if (r.max_connections >= 0) put_number(&out, "max_connections", r.max_connections);
        put(&out, "cap_per", cap_per_name(r.cap_per));
        if (r.idle_timeout_us != kUnset) put_number(&out, "idle_timeout_us", r.idle_timeout_us);
        if (r.idle_in_transaction_timeout_us != kUnset) {
            put_number(&out, "idle_in_transaction_timeout_us", r.idle_in_transaction_timeout_us);
        }
        if (r.idle_blocker_timeout_us != kUnset) put_number(&out, "idle_blocker_timeout_us", r.idle_blocker_timeout_us);
        if (r.max_session_age_us != kUnset) put_number(&out, "max_session_age_us", r.max_session_age_us);
        put(&out, "mode", mode_name(r.mode));
        put(&out, "enabled", r.enabled ? "t" : "f");
        put(&out, "pooler", r.pooler ? "t" : "f");
        if (r.max_transaction_time_us != kUnset) put_number(&out, "max_transaction_time_us", r.max_transaction_time_us);
        put(&out, "action", time_action_name(r.action));
        if (r.statement_timeout_ms != kUnset) put_number(&out, "statement_timeout_ms", r.statement_timeout_ms);
        if (r.lock_timeout_ms != kUnset) put_number(&out, "lock_timeout_ms", r.lock_timeout_ms);
        if (r.max_active >= 0) put_number(&out, "max_active", r.max_active);
        if (r.active_wait_us != kUnset) put_number(&out, "active_wait_us", r.active_wait_us);
        if (r.min_connections >= 0) put_number(&out, "min_connections", r.min_connections);
        out.append("end\n");
    }
    put_number(&out, "rules", static_cast<std::int64_t>(count));  // the closing line: a truncated file lacks it
    return out;
}

CompiledRuleSet decode_rule_set(std::string_view text, std::size_t max_rules) {
    CompiledRuleSet failed;
    if (text.substr(0, kFirstLine.size()) != kFirstLine) {
        failed.error = "it is not a pg_connguard rule file of a format this build reads";
        return failed;
    }
    text.remove_prefix(kFirstLine.size());
    std::vector<RuleInput> rows;
    bool in_rule = false;
    std::string error;
    while (!text.empty()) {
        Field field;
        if (!next_field(&text, &field, &error)) {
            failed.error = error;
            return failed;
        }
        if (!field.bare && field.name == "rules" && !in_rule) {
            std::optional<std::size_t> count;
            if (!number(field.value, &count) || *count != rows.size() || !text.empty()) {
                failed.error = "its closing line does not match the rules it holds";
                return failed;
            }
            return compile_rule_set(rows, max_rules);
        }
        if (field.bare && field.name == "rule" && !in_rule) {
            rows.emplace_back();
            in_rule = true;
        } else if (field.bare && field.name == "end" && in_rule) {
            in_rule = false;
        } else if (!field.bare && in_rule) {
            if (!set_column(&rows.back(), field.name, field.value)) {
                failed.error = "field \"" + std::string(field.name) + "\" is unknown to this build or malformed";
                return failed;
            }
        } else {
            failed.error = "line \"" + std::string(field.name.substr(0, 40)) + "\" is out of place";
            return failed;
        }
        if (rows.size() > max_rules) {
            failed.error = "it holds more rules than connguard.max_rules (" + std::to_string(max_rules) + ")";
            return failed;
        }
    }
    failed.error = "it is cut short";
    return failed;
}

}  // namespace connguard::core
