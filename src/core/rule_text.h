// The rule file's contents (pg_connguard.rules in the data directory): the rule set in
// force written as the columns of connguard.rules, by name, so that whatever build reads it
// validates and compiles it again with its own compiler instead of trusting a memory layout.
// A field this build does not know, a malformed or truncated text, or a rule the compiler
// refuses makes the whole file unusable: it is then ignored, never enforced in part.
//
// Layout: a first line "pg_connguard rule file 1", then per rule a line "rule", one line per
// non-NULL column "<name> <length>:<bytes>" (bytes taken as they are, so any value survives),
// and a line "end"; after the last rule, the closing line "rules <length>:<count>".
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <string>
#include <string_view>

#include "rule_compiler.h"

namespace connguard::core {

std::string encode_rule_set(const CompiledRule* rules, std::size_t count);

// Decodes and compiles; on failure, error says why and no rule is returned.
CompiledRuleSet decode_rule_set(std::string_view text, std::size_t max_rules);

}  // namespace connguard::core
