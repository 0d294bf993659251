// The last rule set in force, kept in a file of the data directory (pg_connguard.rules) so
// that the caps hold from the first login the server accepts after a start or a crash
// restart, before the rules loader has read connguard.rules. The loader writes it after each
// successful load; the postmaster reads it when it initialises pg_connguard's shared memory.
#pragma once

#include "pg/postgres_includes.h"

namespace connguard::pg {

inline constexpr const char* kRuleFileName = "pg_connguard.rules";

// Replaces the file with these rules (a temporary file, synced, renamed over the old one).
// On failure it logs why and returns false; the rules in shared memory are unaffected.
bool save_rule_file(const core::CompiledRule* rules, int count);

// Reads the file into rules[0 .. capacity). Returns the number of rules read, 0 when there is
// no file, or -1 when the file is unusable (why says what is wrong; nothing is restored).
int read_rule_file(core::CompiledRule* rules, int capacity, char* why, std::size_t why_size);

}  // namespace connguard::pg
