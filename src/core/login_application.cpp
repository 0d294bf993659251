#include "login_application.h"

#include <algorithm>
#include <cstring>

namespace connguard::core {
namespace {

// The server splits options with isspace() in the C locale: these six.
bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Single-letter server switches that take a value, as the server's own switch parser
// knows them: their separate value must be skipped, not read as an option.
bool switch_takes_value(char letter) noexcept {
    return std::string_view("BCDdfhkNprStvW").find(letter) != std::string_view::npos;
}

bool is_application_name(std::string_view name) noexcept {
    constexpr std::string_view kName = "application_name";
    if (name.size() != kName.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        char c = ascii_lower(name[i]);
        if (c == '-') c = '_';  // --application-name=... is accepted too
        if (c != kName[i]) return false;
    }
    return true;
}

// "name=value" -> value, when name is application_name.
bool application_name_setting(std::string_view setting, std::string_view* value) noexcept {
    const std::size_t equals = setting.find('=');
    if (equals == std::string_view::npos || !is_application_name(setting.substr(0, equals))) return false;
    *value = setting.substr(equals + 1);
    return true;
}

// The raw value found so far; only its first kMaxNameBytes bytes can reach the name,
// since cleaning never shortens.
struct RawValue {
    char bytes[kMaxNameBytes];
    std::size_t size = 0;
    void assign(std::string_view value) noexcept {
        size = std::min(value.size(), kMaxNameBytes);
        // A default string_view's data() is null, which memcpy may not take even for 0 bytes.
        if (size != 0) std::memcpy(bytes, value.data(), size);
    }
};

}  // namespace

bool next_startup_word(std::string_view options, std::size_t* pos, StartupWord* word) noexcept {
    std::size_t i = *pos;
    while (i < options.size() && is_space(options[i])) ++i;
    if (i >= options.size()) {
        *pos = i;
        return false;
    }
    word->length = 0;
    bool escaped = false;
    for (; i < options.size(); ++i) {
        const char c = options[i];
        if (!escaped && is_space(c)) break;
        if (!escaped && c == '\\') {
            escaped = true;
            continue;
        }
        escaped = false;
        if (word->length < kWordPrefixBytes) word->text[word->length] = c;
        ++word->length;
    }
    *pos = i;
    return true;
}

ApplicationName clean_application_name(std::string_view raw, AsciiCleaning cleaning) noexcept {
    ApplicationName name;
    std::size_t n = 0;
    auto put = [&](char c) {
        if (n < kMaxNameBytes) name.text[n++] = c;
    };
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : raw) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 32 && u <= 126) {
            put(c);
        } else if (cleaning == AsciiCleaning::kQuestionMark) {
            put('?');
        } else {
            put('\\');
            put('x');
            put(kHex[u >> 4]);
            put(kHex[u & 0xf]);
        }
        if (n == kMaxNameBytes) break;
    }
    name.text[n] = '\0';
    return name;
}

ApplicationName login_application_name(std::string_view options, const StartupParameter* parameters,
                                       std::size_t parameter_count, AsciiCleaning cleaning) noexcept {
    RawValue found;
    std::size_t pos = 0;
    StartupWord word;
    std::string_view value;
    while (next_startup_word(options, &pos, &word)) {
        const std::string_view w = word.prefix();
        if (word.length < 2 || w[0] != '-') continue;
        if (w[1] == '-') {
            if (application_name_setting(w.substr(2), &value)) found.assign(value);
        } else if (w[1] == 'c') {
            if (word.length > 2) {
                if (application_name_setting(w.substr(2), &value)) found.assign(value);
            } else if (next_startup_word(options, &pos, &word)) {
                if (application_name_setting(word.prefix(), &value)) found.assign(value);
            }
        } else if (word.length == 2 && switch_takes_value(w[1])) {
            next_startup_word(options, &pos, &word);  // the switch's value
        }
    }
    for (std::size_t i = 0; i < parameter_count; ++i) {
        const StartupParameter& p = parameters[i];
        if (is_application_name(p.name) && p.name.find('-') == std::string_view::npos) found.assign(p.value);
    }
    return clean_application_name(std::string_view(found.bytes, found.size), cleaning);
}

}  // namespace connguard::core
