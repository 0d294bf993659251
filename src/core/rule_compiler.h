// Validation and compilation of rules: the one place that decides whether a row of
// connguard.rules is acceptable. The INSERT/UPDATE trigger and the rule loader both call
// it, so SQL and the enforced rule set can never disagree.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <string>
#include <vector>

#include "rule.h"

namespace connguard::core {

struct RuleError {
    std::string field;    // column of connguard.rules at fault ("" when it is the whole set)
    std::string message;  // why, in words a DBA can act on

    bool ok() const noexcept { return message.empty(); }
};

// Validates one row and fills *out. On error *out is unspecified.
RuleError compile_rule(const RuleInput& input, CompiledRule* out);

// 'rule "name": invalid column: why' — the one wording of a bad rule, in SQL and in logs.
std::string describe_rule_error(const RuleInput& input, const RuleError& error);

struct CompiledRuleSet {
    std::vector<CompiledRule> rules;  // enabled rules only, in (priority, rule_name) order
    std::string error;                // non-empty: nothing was compiled
    std::size_t disabled = 0;         // valid rules left out because enabled = false
};

// Compiles every row; one invalid row or more enabled rules than max_rules refuses the set.
CompiledRuleSet compile_rule_set(const std::vector<RuleInput>& rows, std::size_t max_rules);

}  // namespace connguard::core
