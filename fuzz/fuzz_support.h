// What every fuzz target shares: an invariant that fails stops the run with a trap, so
// libFuzzer saves the input that broke it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <utility>

namespace connguard::fuzz {

inline void require(bool condition, const char* target, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "%s invariant violated: %s\n", target, what);
        __builtin_trap();
    }
}

// The fuzz input as two texts: what comes before its first NUL byte, and what comes after
// it (the first text again when there is no NUL). Views into libFuzzer's buffer, so that
// AddressSanitizer sees any read past either end.
inline std::pair<std::string_view, std::string_view> two_texts(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t separator = input.find('\0');
    const std::string_view first = input.substr(0, separator);
    return {first, separator == std::string_view::npos ? first : input.substr(separator + 1)};
}

}  // namespace connguard::fuzz
