// Fuzzes the startup-packet readers of src/core/login_application.h: next_startup_word over
// an "options" string, clean_application_name, and login_application_name.
//
// Input: one byte of flags (bit 0: hex-escape cleaning instead of '?'), then NUL-separated
// fields: the "options" string, then startup parameters as name, value, name, value, ...
//
// Invariants (a violation aborts through __builtin_trap):
//  - next_startup_word splits options into the same words as a plain std::string splitter
//    (white space separates, '\' makes the next character literal), reports each word's
//    whole length, keeps its first kWordPrefixBytes bytes, always moves *pos forward, and
//    leaves *pos at the end of the options when no word is left;
//  - every ApplicationName is NUL-terminated within its buffer, at most kMaxNameBytes bytes
//    long, and printable ASCII only;
//  - clean_application_name and login_application_name give what plain std::string
//    versions of the rules in login_application.h give: "-c name=value", "-cname=value" and
//    "--name=value" in options (name case-insensitive, '-' read as '_'), the separate value
//    of a switch that takes one skipped, the last occurrence winning, a startup parameter
//    spelled exactly "application_name" (any case) winning over options, then cleaning
//    and clipping to kMaxNameBytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/login_application.h"

#include "fuzz_support.h"

using namespace connguard;
using namespace connguard::core;

namespace {

void require(bool condition, const char* what) { fuzz::require(condition, "login_application", what); }

constexpr std::size_t kMaxParameters = 16;

bool is_space(char c) { return std::string_view(" \t\n\v\f\r").find(c) != std::string_view::npos; }

std::vector<std::string> reference_words(std::string_view options) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false, escaped = false;
    for (char c : options) {
        if (!escaped && is_space(c)) {
            if (in_word) words.push_back(word);
            word.clear();
            in_word = false;
            continue;
        }
        in_word = true;
        if (!escaped && c == '\\') {
            escaped = true;
            continue;
        }
        escaped = false;
        word += c;
    }
    if (in_word) words.push_back(word);
    return words;
}

std::string reference_clean(std::string_view raw, AsciiCleaning cleaning) {
    std::string out;
    for (char c : raw) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 32 && u <= 126) {
            out += c;
        } else if (cleaning == AsciiCleaning::kQuestionMark) {
            out += '?';
        } else {
            char escape[5];
            std::snprintf(escape, sizeof escape, "\\x%02x", u);
            out += escape;
        }
    }
    return out.substr(0, kMaxNameBytes);
}

bool names_application_name(std::string name, bool hyphen_allowed) {
    for (char& c : name) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (hyphen_allowed && c == '-') c = '_';
    }
    return name == "application_name";
}

// Sets *value when the setting is "application_name=value".
void read_setting(const std::string& setting, std::string* value) {
    const std::size_t equals = setting.find('=');
    if (equals != std::string::npos && names_application_name(setting.substr(0, equals), true)) {
        *value = setting.substr(equals + 1);
    }
}

std::string reference_application_name(std::string_view options, const std::vector<StartupParameter>& parameters,
                                       AsciiCleaning cleaning) {
    // Switches of the server that take a value (getopt letters with ':'), 'c' and '-' aside.
    const std::string valued_switches = "BCDdfhkNprStvW";
    const std::vector<std::string> words = reference_words(options);
    std::string value;
    for (std::size_t i = 0; i < words.size(); ++i) {
        const std::string& word = words[i];
        if (word.size() < 2 || word[0] != '-') continue;
        if (word[1] == '-') {
            read_setting(word.substr(2), &value);
        } else if (word[1] == 'c') {
            if (word.size() > 2) {
                read_setting(word.substr(2), &value);
            } else if (i + 1 < words.size()) {
                read_setting(words[++i], &value);
            }
        } else if (word.size() == 2 && valued_switches.find(word[1]) != std::string::npos) {
            ++i;
        }
    }
    for (const StartupParameter& parameter : parameters) {
        if (names_application_name(std::string(parameter.name), false)) value = std::string(parameter.value);
    }
    return reference_clean(value, cleaning);
}

std::string checked_text(const ApplicationName& name) {
    const void* nul = std::memchr(name.text, '\0', sizeof name.text);
    require(nul != nullptr, "application name is not NUL-terminated");
    const std::size_t length = static_cast<const char*>(nul) - name.text;
    require(length <= kMaxNameBytes, "application name longer than kMaxNameBytes");
    for (std::size_t i = 0; i < length; ++i) {
        require(name.text[i] >= 32 && name.text[i] <= 126, "application name has a byte outside printable ASCII");
    }
    return std::string(name.text, length);
}

void check_words(std::string_view options) {
    const std::vector<std::string> expected = reference_words(options);
    std::size_t pos = 0, count = 0;
    StartupWord word;
    while (true) {
        const std::size_t before = pos;
        if (!next_startup_word(options, &pos, &word)) break;
        require(pos > before && pos <= options.size(), "next_startup_word did not move forward within the options");
        require(count < expected.size(), "next_startup_word found more words than there are");
        const std::string& whole = expected[count++];
        require(word.length == whole.size(), "word length is not the whole word's");
        require(word.prefix() == std::string_view(whole).substr(0, kWordPrefixBytes), "word prefix differs");
    }
    require(count == expected.size(), "next_startup_word missed words");
    require(pos == options.size(), "no word left but *pos is not at the end");
    std::size_t past_end = options.size() + 1;
    require(!next_startup_word(options, &past_end, &word), "a word found past the end of the options");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const AsciiCleaning cleaning = (data[0] & 1) ? AsciiCleaning::kHexEscape : AsciiCleaning::kQuestionMark;
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

    std::vector<std::string_view> fields;
    for (std::size_t start = 0;;) {
        const std::size_t nul = input.find('\0', start);
        fields.push_back(input.substr(start, nul == std::string_view::npos ? std::string_view::npos : nul - start));
        if (nul == std::string_view::npos) break;
        start = nul + 1;
    }
    const std::string_view options = fields[0];
    std::vector<StartupParameter> parameters;
    for (std::size_t i = 1; i < fields.size() && parameters.size() < kMaxParameters; i += 2) {
        parameters.push_back({fields[i], i + 1 < fields.size() ? fields[i + 1] : std::string_view()});
    }

    check_words(options);
    for (std::string_view field : fields) {
        const std::string cleaned = checked_text(clean_application_name(field, cleaning));
        require(cleaned == reference_clean(field, cleaning), "clean_application_name differs from the reference");
    }
    const std::string name =
        checked_text(login_application_name(options, parameters.data(), parameters.size(), cleaning));
    require(name == reference_application_name(options, parameters, cleaning),
            "login_application_name differs from the reference");
    return 0;
}
