// What every fuzz target shares: an invariant that fails stops the run with a trap, so
// libFuzzer saves the input that broke it.
#pragma once

#include <cstdio>

namespace connguard::fuzz {

inline void require(bool condition, const char* target, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "%s invariant violated: %s\n", target, what);
        __builtin_trap();
    }
}

}  // namespace connguard::fuzz
