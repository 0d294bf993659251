// Fuzzes the rule file's text, src/core/rule_text.h: decode_rule_set on any bytes, as the
// postmaster reads pg_connguard.rules at start.
//
// Invariants (a violation aborts through __builtin_trap):
//  - decoding never reads outside the input and either refuses it with a reason and no rule,
//    or returns at most max_rules compiled rules;
//  - what decodes re-encodes to a text that decodes to the very same rules (byte for byte),
//    and encoding that is stable: nothing is misread into other values on a second reading.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/rule_text.h"
#include "fuzz_support.h"

using namespace connguard;
using namespace connguard::core;

namespace {

void require(bool condition, const char* what) { fuzz::require(condition, "rule_file", what); }

constexpr std::size_t kMaxRules = 16;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const CompiledRuleSet decoded = decode_rule_set(text, kMaxRules);
    if (!decoded.error.empty()) {
        require(decoded.rules.empty(), "a refused file returns no rule");
        return 0;
    }
    require(decoded.rules.size() <= kMaxRules, "at most max_rules rules");
    const std::string again = encode_rule_set(decoded.rules.data(), decoded.rules.size());
    const CompiledRuleSet redecoded = decode_rule_set(again, kMaxRules);
    require(redecoded.error.empty(), "an encoded rule set decodes");
    require(redecoded.rules.size() == decoded.rules.size(), "to as many rules");
    for (std::size_t i = 0; i < decoded.rules.size(); ++i) {
        require(std::memcmp(&decoded.rules[i], &redecoded.rules[i], sizeof(CompiledRule)) == 0,
                "to the very same rules");
    }
    require(encode_rule_set(redecoded.rules.data(), redecoded.rules.size()) == again, "encoding is stable");
    return 0;
}
