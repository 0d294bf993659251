#include "address.h"

#include <cstdio>

namespace connguard::core {
namespace {

bool parse_ipv4(std::string_view text, std::uint8_t out[4]) noexcept {
    int part = 0;
    std::size_t i = 0;
    while (part < 4) {
        if (i >= text.size() || text[i] < '0' || text[i] > '9') return false;
        unsigned value = 0;
        std::size_t digits = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            value = value * 10 + static_cast<unsigned>(text[i] - '0');
            if (++digits > 3 || value > 255) return false;
            ++i;
        }
        out[part++] = static_cast<std::uint8_t>(value);
        if (part < 4) {
            if (i >= text.size() || text[i] != '.') return false;
            ++i;
        }
    }
    return i == text.size();
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool parse_ipv6(std::string_view text, std::uint8_t out[16]) noexcept {
    std::uint16_t head[8] = {}, tail[8] = {};
    int nhead = 0, ntail = 0;
    bool compressed = false;
    std::size_t i = 0;
    if (text.size() >= 2 && text[0] == ':' && text[1] == ':') {
        compressed = true;
        i = 2;
    } else if (!text.empty() && text[0] == ':') {
        return false;
    }
    std::uint8_t embedded_v4[4];
    bool has_v4 = false;
    while (i < text.size()) {
        // An embedded IPv4 tail: the rest of the text has a dot in it.
        const std::size_t dot = text.find('.', i);
        const std::size_t colon = text.find(':', i);
        if (dot != std::string_view::npos && (colon == std::string_view::npos || dot < colon)) {
            if (!parse_ipv4(text.substr(i), embedded_v4)) return false;
            has_v4 = true;
            i = text.size();
            break;
        }
        unsigned value = 0;
        std::size_t digits = 0;
        while (i < text.size() && hex_value(text[i]) >= 0) {
            value = value * 16 + static_cast<unsigned>(hex_value(text[i]));
            if (++digits > 4) return false;
            ++i;
        }
        if (digits == 0) return false;
        auto& groups = compressed ? tail : head;
        int& count = compressed ? ntail : nhead;
        if (nhead + ntail >= 8) return false;
        groups[count++] = static_cast<std::uint16_t>(value);
        if (i == text.size()) break;
        if (text[i] != ':') return false;
        ++i;
        if (i < text.size() && text[i] == ':') {
            if (compressed) return false;
            compressed = true;
            ++i;
        } else if (i == text.size()) {
            return false;  // trailing single colon
        }
    }
    const int total = nhead + ntail + (has_v4 ? 2 : 0);
    if (total > 8 || (!compressed && total != 8) || (compressed && total == 8)) return false;
    std::uint16_t groups[8] = {};
    for (int k = 0; k < nhead; ++k) groups[k] = head[k];
    const int tail_start = 8 - ntail - (has_v4 ? 2 : 0);
    for (int k = 0; k < ntail; ++k) groups[tail_start + k] = tail[k];
    if (has_v4) {
        groups[6] = static_cast<std::uint16_t>(embedded_v4[0] << 8 | embedded_v4[1]);
        groups[7] = static_cast<std::uint16_t>(embedded_v4[2] << 8 | embedded_v4[3]);
    }
    for (int k = 0; k < 8; ++k) {
        out[2 * k] = static_cast<std::uint8_t>(groups[k] >> 8);
        out[2 * k + 1] = static_cast<std::uint8_t>(groups[k] & 0xFF);
    }
    return true;
}

bool is_v4_mapped(const IpAddress& a) noexcept {
    if (a.family != AddressFamily::kIPv6) return false;
    for (int k = 0; k < 10; ++k) {
        if (a.bytes[k] != 0) return false;
    }
    return a.bytes[10] == 0xFF && a.bytes[11] == 0xFF;
}

}  // namespace

bool parse_ip_address(std::string_view text, IpAddress* out) noexcept {
    IpAddress parsed;
    if (text.find(':') != std::string_view::npos) {
        const std::size_t zone = text.find('%');
        if (zone != std::string_view::npos) text = text.substr(0, zone);
        if (!parse_ipv6(text, parsed.bytes)) return false;
        parsed.family = AddressFamily::kIPv6;
    } else {
        if (!parse_ipv4(text, parsed.bytes)) return false;
        parsed.family = AddressFamily::kIPv4;
    }
    *out = parsed;
    return true;
}

std::string parse_cidr(std::string_view text, Cidr* out) {
    const std::size_t slash = text.find('/');
    Cidr parsed;
    if (!parse_ip_address(text.substr(0, slash), &parsed.network) ||
        text.find('%') != std::string_view::npos) {
        return "\"" + std::string(text) + "\" is not an IPv4 or IPv6 network";
    }
    const unsigned max_bits = parsed.network.family == AddressFamily::kIPv4 ? 32 : 128;
    unsigned bits = max_bits;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3) return "\"" + std::string(text) + "\" has a bad mask length";
        bits = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return "\"" + std::string(text) + "\" has a bad mask length";
            bits = bits * 10 + static_cast<unsigned>(c - '0');
        }
        if (bits > max_bits) {
            return "\"" + std::string(text) + "\" has a mask longer than " + std::to_string(max_bits) + " bits";
        }
    }
    parsed.prefix_bits = static_cast<std::uint8_t>(bits);
    for (unsigned bit = bits; bit < max_bits; ++bit) {
        if (parsed.network.bytes[bit / 8] & (0x80 >> (bit % 8))) {
            return "\"" + std::string(text) + "\" has bits set to the right of the mask";
        }
    }
    *out = parsed;
    return {};
}

bool cidr_contains(const Cidr& network, const IpAddress& address) noexcept {
    IpAddress candidate = address;
    if (network.network.family == AddressFamily::kIPv4 && is_v4_mapped(address)) {
        candidate.family = AddressFamily::kIPv4;
        for (int k = 0; k < 4; ++k) candidate.bytes[k] = address.bytes[12 + k];
    }
    if (candidate.family != network.network.family || candidate.family == AddressFamily::kNone) return false;
    const unsigned bits = network.prefix_bits;
    for (unsigned k = 0; k < bits / 8; ++k) {
        if (candidate.bytes[k] != network.network.bytes[k]) return false;
    }
    if (bits % 8 != 0) {
        const auto mask = static_cast<std::uint8_t>(0xFF << (8 - bits % 8));
        if ((candidate.bytes[bits / 8] & mask) != (network.network.bytes[bits / 8] & mask)) return false;
    }
    return true;
}

std::string cidr_to_string(const Cidr& network) {
    char buf[64];
    const auto& b = network.network.bytes;
    if (network.network.family == AddressFamily::kIPv4) {
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u/%u", b[0], b[1], b[2], b[3], network.prefix_bits);
        return buf;
    }
    // RFC 5952: the longest run (2+) of zero groups becomes "::", lower-case hex.
    unsigned groups[8];
    for (int k = 0; k < 8; ++k) groups[k] = static_cast<unsigned>(b[2 * k] << 8 | b[2 * k + 1]);
    int best_start = -1, best_len = 0;
    for (int k = 0; k < 8;) {
        if (groups[k] != 0) {
            ++k;
            continue;
        }
        int run = k;
        while (run < 8 && groups[run] == 0) ++run;
        if (run - k > best_len && run - k >= 2) {
            best_start = k;
            best_len = run - k;
        }
        k = run;
    }
    std::string out;
    for (int k = 0; k < 8; ++k) {
        if (k == best_start) {
            out += "::";
            k += best_len - 1;
            continue;
        }
        if (!out.empty() && out.back() != ':') out += ':';
        std::snprintf(buf, sizeof buf, "%x", groups[k]);
        out += buf;
    }
    return out + "/" + std::to_string(network.prefix_bits);
}

}  // namespace connguard::core
