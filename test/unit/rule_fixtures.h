// What the unit tests build rules from: a valid row of connguard.rules with the table's
// defaults (priority 100, cap_per 'rule', mode 'enforce', enabled), for each test to change
// what it is about, and its compiled form (an input the validator refuses fails the test).
#pragma once

#include <gtest/gtest.h>

#include <string_view>

#include "core/rule_compiler.h"

namespace connguard::core {

inline RuleInput rule_input(std::string_view name = "r") {
    RuleInput in;
    in.rule_name = name;
    in.priority = 100;
    in.cap_per = "rule";
    in.mode = "enforce";
    in.enabled = true;
    return in;
}

inline CompiledRule compiled(const RuleInput& in) {
    CompiledRule rule;
    const RuleError e = compile_rule(in, &rule);
    EXPECT_TRUE(e.ok()) << e.message;
    return rule;
}

}  // namespace connguard::core
