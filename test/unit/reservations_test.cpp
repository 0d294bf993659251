// Reserved connections: who is let in while reservations are unused, the login's own
// reservation, monitor mode and dry run, exempt logins, and the rule-set check.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/reservations.h"
#include "core/rule_compiler.h"
#include "rule_fixtures.h"

using namespace connguard::core;

namespace {

CompiledRule reserving(const char* name, int min, Mode mode = Mode::kEnforce) {
    RuleInput in = rule_input(name);
    in.min_connections = min;
    CompiledRule rule = compiled(in);
    rule.mode = mode;
    return rule;
}

// `n` sessions under `rule_name` ("" for the defaults), counted unless `counted` is false.
void hold(std::vector<SessionSlot>* slots, const char* rule_name, int n, bool counted = true) {
    for (int i = 0; i < n; ++i) {
        SessionSlot slot{};
        slot.in_use = true;
        slot.counted = counted;
        std::strncpy(slot.rule_name, rule_name, sizeof slot.rule_name - 1);
        slots->push_back(slot);
    }
}

ReservationCheck check(const std::vector<CompiledRule>& rules, const std::vector<SessionSlot>& slots, int usable,
                       int login_rule, bool counted = true, AdmissionPolicy policy = {}) {
    return check_reservations(rules.data(), rules.size(), slots.data(), slots.size(), usable, login_rule, counted, policy);
}

}  // namespace

TEST(Reservations, NoReservationAdmitsEveryone) {
    std::vector<SessionSlot> slots;
    hold(&slots, "", 99);
    EXPECT_EQ(check({compiled(rule_input("web"))}, slots, 100, kNoRule).verdict, Verdict::kAdmit);
}

TEST(Reservations, OthersAreRefusedBeforeTheyTakeReservedPlaces) {
    const std::vector<CompiledRule> rules = {reserving("critical", 5)};
    std::vector<SessionSlot> slots;
    hold(&slots, "critical", 1);
    hold(&slots, "", 94);  // 95 of 100 in use, 4 reserved places unused: 5 free
    EXPECT_EQ(check(rules, slots, 100, kNoRule).verdict, Verdict::kAdmit) << "4 free after it, 4 reserved";
    hold(&slots, "", 1);   // 96 in use: admitting one more leaves 3 free for 4 reserved
    const ReservationCheck refused = check(rules, slots, 100, kNoRule);
    EXPECT_EQ(refused.verdict, Verdict::kReject);
    EXPECT_EQ(reservation_detail(refused, rules.data()),
              "rule \"critical\" reserves 5 connections, 1 in use; 4 of 100 usable slots free, 4 reserved places unused");
    EXPECT_EQ(reservation_message(), "remaining connection slots are reserved for pg_connguard rules");
}

TEST(Reservations, ALoginWithRoomInItsOwnReservationIsLetIn) {
    const std::vector<CompiledRule> rules = {reserving("critical", 5)};
    std::vector<SessionSlot> slots;
    hold(&slots, "critical", 4);
    hold(&slots, "", 95);  // 99 of 100 in use
    EXPECT_EQ(check(rules, slots, 100, 0).verdict, Verdict::kAdmit);
    hold(&slots, "critical", 1);  // its reservation is full: it is like everyone else now
    EXPECT_EQ(check(rules, slots, 101, 0).verdict, Verdict::kAdmit) << "1 free, nothing reserved";
    EXPECT_EQ(check(rules, slots, 100, 0).verdict, Verdict::kAdmit)
        << "no free slot, but nothing reserved is unused: core refuses it, not a reservation";
}

TEST(Reservations, MonitorModeAndDryRunOnlyWouldRefuse) {
    std::vector<SessionSlot> slots;
    hold(&slots, "", 99);
    EXPECT_EQ(check({reserving("critical", 5, Mode::kMonitor)}, slots, 100, kNoRule).verdict, Verdict::kWouldReject);
    AdmissionPolicy dry;
    dry.dry_run = true;
    EXPECT_EQ(check({reserving("critical", 5)}, slots, 100, kNoRule, true, dry).verdict, Verdict::kWouldReject);
    AdmissionPolicy off;
    off.enabled = false;
    EXPECT_EQ(check({reserving("critical", 5)}, slots, 100, kNoRule, true, off).verdict, Verdict::kAdmit);
}

TEST(Reservations, ExemptLoginsAreNeverRefusedButTheirSlotsAreNotFree) {
    const std::vector<CompiledRule> rules = {reserving("critical", 5)};
    std::vector<SessionSlot> slots;
    hold(&slots, "", 95, false);  // superusers and exempt roles
    EXPECT_EQ(check(rules, slots, 100, kNoRule, false).verdict, Verdict::kAdmit);
    EXPECT_EQ(check(rules, slots, 100, kNoRule).verdict, Verdict::kReject) << "4 free after it, 5 reserved";
}

TEST(Reservations, ARuleSetReservingMoreThanTheServerHasIsRefused) {
    const std::vector<CompiledRule> rules = {reserving("a", 60), reserving("b", 40)};
    EXPECT_EQ(reservation_set_error(rules.data(), rules.size(), 100), "");
    EXPECT_EQ(reservation_set_error(rules.data(), rules.size(), 97),
              "the rules reserve 100 connections (min_connections) but the server has 97 usable slots; lower "
              "min_connections or raise max_connections");
}

TEST(Reservations, Validation) {
    RuleInput in = rule_input("critical");
    CompiledRule out;
    in.min_connections = -1;
    EXPECT_EQ(compile_rule(in, &out).field, "min_connections");
    in.min_connections = 5;
    in.max_connections = 3;
    EXPECT_EQ(compile_rule(in, &out).message, "must be at most max_connections (3)");
    in.max_connections = 10;
    in.cap_per = "application";
    EXPECT_EQ(compile_rule(in, &out).field, "min_connections");
    in.cap_per = "rule";
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_EQ(out.min_connections, 5);
}

// Logins waiting in the login queue hold backend slots as sessions do: they count as in use,
// so neither a login nor one more waiter takes a slot a reservation needs.
TEST(Reservations, WaitingLoginsHoldSlotsToo) {
    const std::vector<CompiledRule> rules = {reserving("critical", 5)};
    std::vector<SessionSlot> slots;
    hold(&slots, "", 90);  // 10 free, 5 reserved places unused
    const auto with_waiting = [&](int waiting) {
        return check_reservations(rules.data(), rules.size(), slots.data(), slots.size(), 100, kNoRule, true,
                                  AdmissionPolicy{}, waiting);
    };
    EXPECT_EQ(with_waiting(4).verdict, Verdict::kAdmit) << "4 waiting: 5 free after this one, 5 reserved";
    const ReservationCheck refused = with_waiting(5);
    EXPECT_EQ(refused.verdict, Verdict::kReject) << "5 waiting: 4 free after this one";
    EXPECT_EQ(refused.in_use, 95);
}
