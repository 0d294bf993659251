#include "classifier.h"

#include <algorithm>
#include <cstring>

namespace connguard::core {

void sort_rules(CompiledRule* rules, std::size_t count) noexcept {
    std::stable_sort(rules, rules + count, [](const CompiledRule& a, const CompiledRule& b) {
        if (a.priority != b.priority) return a.priority < b.priority;
        return std::strcmp(a.rule_name, b.rule_name) < 0;
    });
}

bool rule_matches(const CompiledRule& rule, const SessionKey& session) noexcept {
    if (rule.database_name.present && !glob_match(rule.database_name.view(), session.database)) return false;
    if (rule.role_name.present) {
        if (rule.role_is_group) {
            if (session.is_member_of == nullptr || !session.is_member_of(rule.group_name(), session.context)) {
                return false;
            }
        } else if (!glob_match(rule.role_name.view(), session.role)) {
            return false;
        }
    }
    if (rule.application_name.present) {
        // '' matches only an empty application_name; glob_match("", x) is true only for x == "".
        if (!glob_match(rule.application_name.view(), session.application)) return false;
    }
    if (rule.has_client_addr) {
        if (session.client_addr == nullptr || !cidr_contains(rule.client_addr, *session.client_addr)) return false;
    }
    return true;
}

int classify(const CompiledRule* rules, const RuleSieve* sieves, std::size_t count,
             const SessionKey& session) noexcept {
    const SieveKey key = sieve_key(session.database, session.role, session.application);
    for (std::size_t i = 0; i < count; ++i) {
        if (!sieve_passes(sieves[i], key)) continue;
        if (rules[i].enabled && rule_matches(rules[i], session)) return static_cast<int>(i);
    }
    return kNoRule;
}

}  // namespace connguard::core
