#include "rule.h"

#include <cstring>

namespace connguard::core {

std::string_view CompiledRule::name() const noexcept { return {rule_name, std::strlen(rule_name)}; }

std::string_view CompiledRule::group_name() const noexcept {
    return role_is_group ? role_name.view().substr(1) : std::string_view{};
}

const char* cap_per_name(CapPer value) noexcept {
    switch (value) {
        case CapPer::kRule: return "rule";
        case CapPer::kDatabase: return "database";
        case CapPer::kRole: return "role";
        case CapPer::kApplication: return "application";
        case CapPer::kClientAddr: return "client_addr";
    }
    return "rule";
}

const char* mode_name(Mode value) noexcept {
    switch (value) {
        case Mode::kEnforce: return "enforce";
        case Mode::kMonitor: return "monitor";
        case Mode::kExempt: return "exempt";
    }
    return "enforce";
}

const char* time_action_name(TimeAction value) noexcept {
    return value == TimeAction::kCancel ? "cancel" : "terminate";
}

std::optional<CapPer> parse_cap_per(std::string_view text) noexcept {
    for (CapPer v : {CapPer::kRule, CapPer::kDatabase, CapPer::kRole, CapPer::kApplication, CapPer::kClientAddr}) {
        if (text == cap_per_name(v)) return v;
    }
    return std::nullopt;
}

std::optional<Mode> parse_mode(std::string_view text) noexcept {
    for (Mode v : {Mode::kEnforce, Mode::kMonitor, Mode::kExempt}) {
        if (text == mode_name(v)) return v;
    }
    return std::nullopt;
}

std::optional<TimeAction> parse_time_action(std::string_view text) noexcept {
    for (TimeAction v : {TimeAction::kTerminate, TimeAction::kCancel}) {
        if (text == time_action_name(v)) return v;
    }
    return std::nullopt;
}

}  // namespace connguard::core
