// IPv4/IPv6 addresses and CIDR networks.
#include <gtest/gtest.h>

#include "core/address.h"

using namespace connguard::core;

namespace {
IpAddress ip(const char* text) {
    IpAddress a;
    EXPECT_TRUE(parse_ip_address(text, &a)) << text;
    return a;
}
Cidr net(const char* text) {
    Cidr c;
    EXPECT_EQ(parse_cidr(text, &c), "") << text;
    return c;
}
bool parses(const char* text) {
    IpAddress a;
    return parse_ip_address(text, &a);
}
}  // namespace

TEST(Address, IPv4) {
    const IpAddress a = ip("192.168.1.20");
    EXPECT_EQ(a.family, AddressFamily::kIPv4);
    EXPECT_EQ(a.bytes[0], 192);
    EXPECT_EQ(a.bytes[3], 20);
}

TEST(Address, BadIPv4) {
    for (const char* bad : {"256.1.1.1", "1.2.3", "1.2.3.4.5", "x1.2.3.4", "1.2.3.4 ", "", "1..2.3", "1234.1.1.1"}) {
        EXPECT_FALSE(parses(bad)) << bad;
    }
}

TEST(Address, IPv6Forms) {
    EXPECT_EQ(ip("::").family, AddressFamily::kIPv6);
    EXPECT_EQ(ip("::1").bytes[15], 1);
    const IpAddress full = ip("2001:0db8:0000:0000:0000:0000:0000:0001");
    const IpAddress compressed = ip("2001:db8::1");
    EXPECT_EQ(0, memcmp(full.bytes, compressed.bytes, 16));
    const IpAddress middle = ip("1:2::7:8");
    EXPECT_EQ(middle.bytes[1], 1);
    EXPECT_EQ(middle.bytes[3], 2);
    EXPECT_EQ(middle.bytes[13], 7);
    EXPECT_EQ(middle.bytes[15], 8);
}

TEST(Address, IPv6WithEmbeddedIPv4AndZone) {
    const IpAddress mapped = ip("::ffff:10.1.2.3");
    EXPECT_EQ(mapped.bytes[10], 0xff);
    EXPECT_EQ(mapped.bytes[12], 10);
    EXPECT_EQ(mapped.bytes[15], 3);
    EXPECT_EQ(ip("fe80::1%eth0").bytes[0], 0xfe) << "the zone is dropped";
}

TEST(Address, BadIPv6) {
    for (const char* bad : {"1:::2", "1:2:3:4:5:6:7:8:9", "1:", ":1", "12345::", "g::1", "1::2::3", "::ffff:1.2.3"}) {
        EXPECT_FALSE(parses(bad)) << bad;
    }
}

TEST(Cidr, MaskLengths) {
    EXPECT_EQ(net("0.0.0.0/0").prefix_bits, 0);
    EXPECT_EQ(net("10.1.2.3/32").prefix_bits, 32);
    EXPECT_EQ(net("::/0").prefix_bits, 0);
    EXPECT_EQ(net("::1/128").prefix_bits, 128);
    EXPECT_EQ(net("10.1.2.3").prefix_bits, 32) << "a bare address is a host network";
    EXPECT_EQ(net("2001:db8::5").prefix_bits, 128);
}

TEST(Cidr, RefusesBadMasksAndHostBits) {
    Cidr c;
    EXPECT_NE(parse_cidr("10.0.0.0/33", &c).find("longer than 32 bits"), std::string::npos);
    EXPECT_NE(parse_cidr("::/129", &c).find("longer than 128 bits"), std::string::npos);
    EXPECT_NE(parse_cidr("10.0.0.1/8", &c).find("bits set to the right of the mask"), std::string::npos);
    EXPECT_NE(parse_cidr("10.0.0.0/", &c).find("bad mask"), std::string::npos);
    EXPECT_NE(parse_cidr("10.0.0.0/x", &c).find("bad mask"), std::string::npos);
    EXPECT_NE(parse_cidr("nonsense/8", &c).find("not an IPv4 or IPv6 network"), std::string::npos);
    EXPECT_NE(parse_cidr("fe80::/10%eth0", &c), "");
}

TEST(Cidr, ContainsIPv4) {
    const Cidr lan = net("192.168.0.0/23");
    EXPECT_TRUE(cidr_contains(lan, ip("192.168.0.1")));
    EXPECT_TRUE(cidr_contains(lan, ip("192.168.1.255")));
    EXPECT_FALSE(cidr_contains(lan, ip("192.168.2.0")));
    EXPECT_FALSE(cidr_contains(lan, ip("192.167.255.255")));
}

TEST(Cidr, SlashZeroMatchesItsWholeFamilyOnly) {
    EXPECT_TRUE(cidr_contains(net("0.0.0.0/0"), ip("8.8.8.8")));
    EXPECT_FALSE(cidr_contains(net("0.0.0.0/0"), ip("2001:db8::1")));
    EXPECT_TRUE(cidr_contains(net("::/0"), ip("2001:db8::1")));
    EXPECT_FALSE(cidr_contains(net("::/0"), ip("8.8.8.8")));
}

TEST(Cidr, HostNetworkMatchesOneAddress) {
    EXPECT_TRUE(cidr_contains(net("10.0.0.5/32"), ip("10.0.0.5")));
    EXPECT_FALSE(cidr_contains(net("10.0.0.5/32"), ip("10.0.0.6")));
    EXPECT_TRUE(cidr_contains(net("::1/128"), ip("::1")));
}

TEST(Cidr, ContainsIPv6) {
    const Cidr doc = net("2001:db8::/32");
    EXPECT_TRUE(cidr_contains(doc, ip("2001:db8:ffff::1")));
    EXPECT_FALSE(cidr_contains(doc, ip("2001:db9::1")));
}

TEST(Cidr, IPv4RuleMatchesAnIPv4MappedClient) {
    EXPECT_TRUE(cidr_contains(net("10.0.0.0/8"), ip("::ffff:10.2.3.4")));
    EXPECT_FALSE(cidr_contains(net("10.0.0.0/8"), ip("::ffff:11.2.3.4")));
}

TEST(Cidr, CanonicalText) {
    EXPECT_EQ(cidr_to_string(net("10.0.0.0/8")), "10.0.0.0/8");
    EXPECT_EQ(cidr_to_string(net("2001:0db8::/32")), "2001:db8::/32");
    EXPECT_EQ(cidr_to_string(net("::/0")), "::/0");
    EXPECT_EQ(cidr_to_string(net("::1")), "::1/128");
    EXPECT_EQ(cidr_to_string(net("1:0:0:1::/64")), "1:0:0:1::/64");
    EXPECT_EQ(cidr_to_string(net("1:0:2:0:0:0:3:0/128")), "1:0:2::3:0/128");
}

TEST(Address, ZoneIsDroppedWhateverItsBytes) {
    // From fuzz/address_fuzz.cpp: an IPv6 zone is dropped unread, NUL bytes and all; a
    // network still refuses any zone.
    const std::string_view text("1::%#\0\0\0\0\0\0\0::3", 15);
    IpAddress a;
    ASSERT_TRUE(parse_ip_address(text, &a));
    EXPECT_EQ(a.family, AddressFamily::kIPv6);
    EXPECT_EQ(a.bytes[1], 1);
    EXPECT_EQ(a.bytes[15], 0);
    Cidr c;
    EXPECT_NE(parse_cidr(text, &c), "");
    EXPECT_FALSE(parses("1.2.3.4%eth0")) << "an IPv4 address has no zone";
}
