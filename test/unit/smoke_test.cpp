#include <gtest/gtest.h>
#include "core/classifier.h"
#include "core/rule_compiler.h"
using namespace connguard::core;
TEST(Smoke, Compiles) {
    RuleInput in; in.rule_name = "a"; in.priority = 1; in.cap_per = "rule"; in.mode = "enforce"; in.enabled = true;
    CompiledRule r; EXPECT_TRUE(compile_rule(in, &r).ok());
}
