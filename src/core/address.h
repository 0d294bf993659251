// IPv4/IPv6 addresses and CIDR networks in plain values, parsed from their text form.
#pragma once
#include "no_postgres.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace connguard::core {

enum class AddressFamily : std::uint8_t { kNone = 0, kIPv4 = 4, kIPv6 = 6 };

// Trivially copyable: lives in shared memory inside compiled rules.
struct IpAddress {
    AddressFamily family = AddressFamily::kNone;
    std::uint8_t bytes[16] = {};  // network order; IPv4 uses the first 4
};

struct Cidr {
    IpAddress network;
    std::uint8_t prefix_bits = 0;
};

// Parses "1.2.3.4", "::1", "::ffff:1.2.3.4", "fe80::1%eth0" (zone dropped).
// Returns false on anything else.
bool parse_ip_address(std::string_view text, IpAddress* out) noexcept;

// Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128).
// Empty string on success, otherwise why the text is not a network.
std::string parse_cidr(std::string_view text, Cidr* out);

// True when the address is inside the network. An IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) is compared as the IPv4 address it carries.
bool cidr_contains(const Cidr& network, const IpAddress& address) noexcept;

// Canonical text ("10.0.0.0/8", "2001:db8::/32").
std::string cidr_to_string(const Cidr& network);

}  // namespace connguard::core
