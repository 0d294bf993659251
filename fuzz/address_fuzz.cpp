// Fuzzes the address parsers of src/core/address.h: parse_ip_address and parse_cidr, with
// cidr_to_string and cidr_contains on what they return.
//
// Input: a text read both as an address and as a network, then optionally a NUL byte and
// a second text read as an address to test for membership.
//
// Invariants (a violation aborts through __builtin_trap):
//  - a parsed address is IPv4 (bytes 4..15 zero) or IPv6;
//  - parse_ip_address agrees with the C library's inet_pton (the part before a '%' zone for
//    IPv6): whatever inet_pton reads parses to the same bytes, and whatever
//    parse_ip_address accepts inet_pton reads too, except IPv4 parts written with a leading
//    zero ("010"), which inet_pton refuses and parse_ip_address reads as decimal ("10");
//  - a bare address parses as the host network (/32 or /128) containing it;
//  - a parsed network has no bit set to the right of its mask and contains its own address;
//  - cidr_to_string round-trips: parse_cidr(cidr_to_string(x)) is x, and printing that again
//    gives the same text;
//  - cidr_contains agrees with a bit-by-bit comparison, for the network as parsed and as
//    re-parsed from its text, and an IPv4 network contains the IPv4-mapped IPv6 form
//    (::ffff:a.b.c.d) of exactly the addresses it contains;
//  - parse_cidr refuses a text parse_ip_address reads only when it carries a zone.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "core/address.h"

#include "fuzz_support.h"

using namespace connguard;
using namespace connguard::core;

namespace {

void require(bool condition, const char* what) { fuzz::require(condition, "address", what); }

unsigned max_bits(AddressFamily family) { return family == AddressFamily::kIPv4 ? 32 : 128; }

bool bit_at(const IpAddress& address, unsigned bit) { return (address.bytes[bit / 8] >> (7 - bit % 8)) & 1; }

bool same_address(const IpAddress& a, const IpAddress& b) {
    return a.family == b.family && std::memcmp(a.bytes, b.bytes, sizeof a.bytes) == 0;
}

bool same_network(const Cidr& a, const Cidr& b) {
    return same_address(a.network, b.network) && a.prefix_bits == b.prefix_bits;
}

// The text with leading zeros dropped from each dotted decimal part of its IPv4 tail
// ("010.001.0.1" -> "10.1.0.1", "::ffff:01.2.3.4" -> "::ffff:1.2.3.4").
std::string without_leading_zeros(const std::string& text) {
    const std::size_t colon = text.rfind(':');
    const std::size_t tail = colon == std::string::npos ? 0 : colon + 1;
    std::string out = text.substr(0, tail);
    bool part_start = true;
    for (std::size_t i = tail; i < text.size(); ++i) {
        const bool more_digits = i + 1 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '9';
        if (part_start && text[i] == '0' && more_digits) continue;
        part_start = text[i] == '.';
        out += text[i];
    }
    return out;
}

bool inet_pton_reads(bool ipv6, const std::string& text, unsigned char bytes[16]) {
    return inet_pton(ipv6 ? AF_INET6 : AF_INET, text.c_str(), bytes) == 1;
}

void check_against_inet_pton(std::string_view text, bool parsed, const IpAddress& address) {
    const bool ipv6 = text.find(':') != std::string_view::npos;
    std::string plain(text);
    if (ipv6) plain = plain.substr(0, plain.find('%'));  // the zone, whatever its bytes, is dropped
    if (plain.find('\0') != std::string::npos) {
        require(!parsed, "an address with a NUL byte parsed");
        return;
    }
    unsigned char bytes[16] = {};
    if (inet_pton_reads(ipv6, plain, bytes)) {
        require(parsed, "inet_pton reads an address parse_ip_address refuses");
    } else if (parsed) {
        require(inet_pton_reads(ipv6, without_leading_zeros(plain), bytes),
                "parse_ip_address accepts an address inet_pton refuses (leading zeros aside)");
    }
    if (parsed) {
        require(address.family == (ipv6 ? AddressFamily::kIPv6 : AddressFamily::kIPv4), "wrong family");
        require(std::memcmp(address.bytes, bytes, ipv6 ? 16 : 4) == 0, "bytes differ from inet_pton's");
    }
}

IpAddress parse_address(std::string_view text, bool* parsed) {
    IpAddress address;
    *parsed = parse_ip_address(text, &address);
    if (*parsed) {
        require(address.family == AddressFamily::kIPv4 || address.family == AddressFamily::kIPv6, "bad family");
        if (address.family == AddressFamily::kIPv4) {
            for (int k = 4; k < 16; ++k) require(address.bytes[k] == 0, "IPv4 address with bytes past the fourth");
        }
    }
    check_against_inet_pton(text, *parsed, address);
    return address;
}

bool reference_contains(const Cidr& network, const IpAddress& address) {
    IpAddress candidate = address;
    const std::uint8_t mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (network.network.family == AddressFamily::kIPv4 && address.family == AddressFamily::kIPv6 &&
        std::memcmp(address.bytes, mapped_prefix, 12) == 0) {
        candidate = IpAddress{};
        candidate.family = AddressFamily::kIPv4;
        std::memcpy(candidate.bytes, address.bytes + 12, 4);
    }
    if (candidate.family != network.network.family) return false;
    for (unsigned bit = 0; bit < network.prefix_bits; ++bit) {
        if (bit_at(candidate, bit) != bit_at(network.network, bit)) return false;
    }
    return true;
}

IpAddress mapped_form(const IpAddress& ipv4) {
    IpAddress mapped;
    mapped.family = AddressFamily::kIPv6;
    mapped.bytes[10] = 0xFF;
    mapped.bytes[11] = 0xFF;
    std::memcpy(mapped.bytes + 12, ipv4.bytes, 4);
    return mapped;
}

void check_membership(const Cidr& network, const Cidr& reparsed, const IpAddress& address) {
    const bool inside = cidr_contains(network, address);
    require(inside == reference_contains(network, address), "cidr_contains disagrees with the bitwise reference");
    require(inside == cidr_contains(reparsed, address), "the re-parsed network contains other addresses");
    if (network.network.family == AddressFamily::kIPv4 && address.family == AddressFamily::kIPv4) {
        require(inside == cidr_contains(network, mapped_form(address)), "IPv4-mapped form treated differently");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto [text, other_text] = fuzz::two_texts(data, size);

    bool parsed = false;
    const IpAddress address = parse_address(text, &parsed);
    bool other_parsed = false;
    const IpAddress other = parse_address(other_text, &other_parsed);

    Cidr network;
    const std::string why = parse_cidr(text, &network);
    if (!why.empty()) {
        // A bare address is a network unless it carries a zone.
        require(!parsed || text.find('%') != std::string_view::npos, "a parsed address is refused as a network");
        return 0;
    }
    const AddressFamily family = network.network.family;
    require(family == AddressFamily::kIPv4 || family == AddressFamily::kIPv6, "network with a bad family");
    require(network.prefix_bits <= max_bits(family), "mask longer than the address");
    for (unsigned bit = network.prefix_bits; bit < 128; ++bit) {
        require(!bit_at(network.network, bit), "bit set to the right of the mask");
    }
    if (parsed) {
        require(same_address(network.network, address), "a bare address parses to another network address");
        require(network.prefix_bits == max_bits(family), "a bare address is not a host network");
    }

    const std::string canonical = cidr_to_string(network);
    Cidr reparsed;
    require(parse_cidr(canonical, &reparsed).empty(), "cidr_to_string wrote a network parse_cidr refuses");
    require(same_network(reparsed, network), "cidr_to_string does not round-trip");
    require(cidr_to_string(reparsed) == canonical, "cidr_to_string is not canonical");

    require(cidr_contains(network, network.network), "a network must contain its own address");
    if (parsed) check_membership(network, reparsed, address);
    if (other_parsed) check_membership(network, reparsed, other);
    return 0;
}
