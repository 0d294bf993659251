#include "login_application.h"

#include <cctype>
#include <cstdio>
#include <optional>

namespace connguard::core {
namespace {

// Single-letter server switches that take a value, as the server's own switch parser
// knows them: their separate value must be skipped, not read as an option.
bool switch_takes_value(char letter) noexcept {
    return std::string_view("BCDdfhkNprStvW").find(letter) != std::string_view::npos;
}

bool is_application_name(std::string_view name) noexcept {
    constexpr std::string_view kName = "application_name";
    if (name.size() != kName.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        char c = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
        if (c == '-') c = '_';  // --application-name=... is accepted too
        if (c != kName[i]) return false;
    }
    return true;
}

// "name=value" -> value, when name is application_name.
std::optional<std::string_view> application_name_setting(std::string_view setting) noexcept {
    const std::size_t equals = setting.find('=');
    if (equals == std::string_view::npos || !is_application_name(setting.substr(0, equals))) return std::nullopt;
    return setting.substr(equals + 1);
}

}  // namespace

std::vector<std::string> split_startup_options(std::string_view options) {
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < options.size()) {
        while (i < options.size() && std::isspace(static_cast<unsigned char>(options[i]))) ++i;
        if (i == options.size()) break;
        std::string word;
        bool escaped = false;
        for (; i < options.size(); ++i) {
            const char c = options[i];
            if (!escaped && std::isspace(static_cast<unsigned char>(c))) break;
            if (!escaped && c == '\\') {
                escaped = true;
            } else {
                escaped = false;
                word += c;
            }
        }
        words.push_back(std::move(word));
    }
    return words;
}

std::string clean_application_name(std::string_view raw, AsciiCleaning cleaning) {
    std::string clean;
    for (char c : raw) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 32 && u <= 126) {
            clean += c;
        } else if (cleaning == AsciiCleaning::kQuestionMark) {
            clean += '?';
        } else {
            char escaped[5];
            std::snprintf(escaped, sizeof escaped, "\\x%02x", u);
            clean += escaped;
        }
    }
    if (clean.size() > kMaxNameBytes) clean.resize(kMaxNameBytes);
    return clean;
}

std::string login_application_name(std::string_view options, const std::vector<StartupParameter>& parameters,
                                   AsciiCleaning cleaning) {
    std::optional<std::string> found;
    const std::vector<std::string> words = split_startup_options(options);
    for (std::size_t i = 0; i < words.size(); ++i) {
        const std::string& word = words[i];
        if (word.size() < 2 || word[0] != '-') continue;
        std::optional<std::string_view> setting;
        if (word[1] == '-') {
            setting = std::string_view(word).substr(2);
        } else if (word[1] == 'c') {
            if (word.size() > 2) {
                setting = std::string_view(word).substr(2);
            } else if (i + 1 < words.size()) {
                setting = std::string_view(words[++i]);
            }
        } else if (word.size() == 2 && switch_takes_value(word[1])) {
            ++i;
        }
        if (setting) {
            if (auto value = application_name_setting(*setting)) found = std::string(*value);
        }
    }
    for (const auto& [name, value] : parameters) {
        if (is_application_name(name) && name.find('-') == std::string_view::npos) found = std::string(value);
    }
    return clean_application_name(found.value_or(""), cleaning);
}

}  // namespace connguard::core
