// The last rule set in force, kept in a file of the data directory (pg_connguard.rules) so
// that the caps hold from the first login the server accepts after a start or a crash
// restart, before the rules loader has read connguard.rules. The loader writes it after each
// rule set it publishes; the postmaster reads it when it initialises pg_connguard's shared
// memory. The contents are the rules as columns by name (core/rule_text.h), compiled again
// when read, behind a checksum line: a file of another build, truncated or garbled is ignored
// with a log line, never enforced.
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

inline constexpr const char* kRuleFileName = "pg_connguard.rules";

// Replaces the file with these rules, published for reload request `generation`: written to
// a temporary file of this process, synced, and renamed over the file only if no newer rule
// set was published meanwhile (under the lock). On failure it logs why and returns false; the
// rules in shared memory are unaffected.
bool save_rule_file(SharedState* state, std::uint64_t generation, const core::CompiledRule* rules, int count);

// Reads the file into rules[0 .. capacity). Returns the number of rules read, 0 when there is
// no file, or -1 when the file is unusable (why says what is wrong; nothing is restored).
int read_rule_file(core::CompiledRule* rules, int capacity, char* why, std::size_t why_size);

}  // namespace connguard::pg
