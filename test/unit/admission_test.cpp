// Admission decisions: grouping by cap_per, exact counting, exemptions, monitor and
// dry-run, the defaults for unmatched sessions, and the refusal texts.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/admission.h"
#include "core/capacity.h"
#include "rule_fixtures.h"

using namespace connguard::core;

namespace {

CompiledRule make_rule(const char* name, std::optional<std::string_view> application, std::optional<int> cap,
                       const char* cap_per = "rule", const char* mode = "enforce", int priority = 100,
                       std::optional<std::string_view> client_addr = std::nullopt) {
    RuleInput in = rule_input(name);
    in.priority = priority;
    in.application_name = application;
    in.max_connections = cap;
    in.cap_per = cap_per;
    in.mode = mode;
    in.client_addr = client_addr;
    return compiled(in);
}

SessionKey session(const char* app, const char* role = "app", const char* db = "db",
                   const IpAddress* addr = nullptr) {
    SessionKey key;
    key.database = db;
    key.role = role;
    key.application = app;
    key.client_addr = addr;
    return key;
}

IpAddress ip(const char* text) {
    IpAddress a;
    EXPECT_TRUE(parse_ip_address(text, &a));
    return a;
}

struct Server {
    std::vector<CompiledRule> rules;
    std::vector<SessionSlot> slots = std::vector<SessionSlot>(64, SessionSlot{});
    std::vector<SlotTags> tags = std::vector<SlotTags>(64, SlotTags{});  // zeroed, as shared memory starts
    AdmissionPolicy policy;
    int next_pid = 1000;

    AdmissionDecision decide(const SessionKey& key, bool exempt = false, std::size_t self = kNewSession) const {
        std::vector<RuleSieve> sieves(rules.size());
        sieve_rules(rules.data(), rules.size(), sieves.data());
        return decide_admission(rules.data(), sieves.data(), rules.size(), policy, key, exempt, slots.data(),
                                tags.data(), slots.size(), self);
    }

    AdmissionDecision login(const SessionKey& key, bool exempt = false) {
        const AdmissionDecision d = decide(key, exempt);
        if (d.verdict != Verdict::kReject) {
            for (std::size_t i = 0; i < slots.size(); ++i) {
                if (!slots[i].in_use) {
                    fill_slot(&slots[i], &tags[i], key, d.rule_index == kNoRule ? "" : rules[d.rule_index].rule_name,
                              d.counted, next_pid++);
                    break;
                }
            }
        }
        return d;
    }

    void logout(int pid) {
        for (std::size_t i = 0; i < slots.size(); ++i) {
            if (slots[i].in_use && slots[i].pid == pid) release_slot(&slots[i], &tags[i]);
        }
    }
};

}  // namespace

TEST(Admission, CapPerRuleAdmitsExactlyTheCap) {
    Server s;
    s.rules = {make_rule("etl", "etl*", 3)};
    for (int i = 0; i < 3; ++i) EXPECT_EQ(s.login(session("etl-1")).verdict, Verdict::kAdmit);
    const AdmissionDecision d = s.login(session("etl-2"));
    EXPECT_EQ(d.verdict, Verdict::kReject);
    EXPECT_EQ(d.in_use, 3);
    EXPECT_EQ(d.cap, 3);
}

TEST(Admission, LogoutFreesThePlaceAtOnce) {
    Server s;
    s.rules = {make_rule("etl", "etl", 1)};
    EXPECT_EQ(s.login(session("etl")).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("etl")).verdict, Verdict::kReject);
    s.logout(1000);
    EXPECT_EQ(s.login(session("etl")).verdict, Verdict::kAdmit);
}

TEST(Admission, CapPerApplicationCountsEachNameApart) {
    Server s;
    s.rules = {make_rule("svc", "svc-*", 2, "application")};
    for (const char* app : {"svc-a", "svc-b"}) {
        EXPECT_EQ(s.login(session(app)).verdict, Verdict::kAdmit);
        EXPECT_EQ(s.login(session(app)).verdict, Verdict::kAdmit);
        EXPECT_EQ(s.login(session(app)).verdict, Verdict::kReject) << app;
    }
}

TEST(Admission, CapPerRoleAndDatabase) {
    Server s;
    s.rules = {make_rule("per-role", std::nullopt, 1, "role", "enforce", 1)};
    EXPECT_EQ(s.login(session("x", "alice")).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("y", "bob")).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("z", "alice")).verdict, Verdict::kReject);

    Server d;
    d.rules = {make_rule("per-db", std::nullopt, 1, "database")};
    EXPECT_EQ(d.login(session("x", "r", "one")).verdict, Verdict::kAdmit);
    EXPECT_EQ(d.login(session("x", "r", "two")).verdict, Verdict::kAdmit);
    EXPECT_EQ(d.login(session("x", "r", "one")).verdict, Verdict::kReject);
}

TEST(Admission, CapPerClientAddressTreatsUnixSocketsAsOneGroup) {
    Server s;
    s.rules = {make_rule("per-addr", std::nullopt, 1, "client_addr")};
    const IpAddress a = ip("10.0.0.1"), b = ip("10.0.0.2");
    EXPECT_EQ(s.login(session("x", "r", "db", &a)).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("x", "r", "db", &b)).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("x", "r", "db", &a)).verdict, Verdict::kReject);
    EXPECT_EQ(s.login(session("x")).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("x")).verdict, Verdict::kReject);
}

TEST(Admission, GroupsOfDifferentRulesDoNotMix) {
    Server s;
    s.rules = {make_rule("a", "a", 1, "rule", "enforce", 1), make_rule("b", "b", 1, "rule", "enforce", 2)};
    EXPECT_EQ(s.login(session("a")).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("b")).verdict, Verdict::kAdmit);
}

TEST(Admission, ZeroCapRefusesEveryLogin) {
    Server s;
    s.rules = {make_rule("closed", std::nullopt, 0)};
    const AdmissionDecision d = s.login(session("anything"));
    EXPECT_EQ(d.verdict, Verdict::kReject);
    EXPECT_EQ(d.in_use, 0);
}

TEST(Admission, NullCapNeverRefusesButCounts) {
    Server s;
    s.rules = {make_rule("open", std::nullopt, std::nullopt)};
    for (int i = 0; i < 10; ++i) EXPECT_EQ(s.login(session("x")).verdict, Verdict::kAdmit);
    const AdmissionDecision d = s.login(session("x"));
    EXPECT_FALSE(d.capped);
    EXPECT_EQ(d.rule_sessions, 10);
}

TEST(Admission, ExemptSessionsPassAFullCapAndAreNotCounted) {
    Server s;
    s.rules = {make_rule("closed", std::nullopt, 0)};
    const AdmissionDecision d = s.login(session("x"), /*exempt=*/true);
    EXPECT_EQ(d.verdict, Verdict::kAdmit);
    EXPECT_FALSE(d.counted);
    s.rules = {make_rule("one", std::nullopt, 1)};
    EXPECT_EQ(s.login(session("x")).verdict, Verdict::kAdmit) << "the exempt session holds no place";
}

TEST(Admission, ExemptRuleIsNeverLimited) {
    Server s;
    s.rules = {make_rule("vip", "vip", std::nullopt, "rule", "exempt", 1), make_rule("closed", std::nullopt, 0, "rule", "enforce", 2)};
    const AdmissionDecision d = s.login(session("vip"));
    EXPECT_EQ(d.verdict, Verdict::kAdmit);
    EXPECT_FALSE(d.counted);
    EXPECT_EQ(s.login(session("other")).verdict, Verdict::kReject);
}

TEST(Admission, MonitorModeAdmitsOverTheCapAndSaysSo) {
    Server s;
    s.rules = {make_rule("watch", std::nullopt, 1, "rule", "monitor")};
    EXPECT_EQ(s.login(session("x")).verdict, Verdict::kAdmit);
    const AdmissionDecision d = s.login(session("x"));
    EXPECT_EQ(d.verdict, Verdict::kWouldReject);
    EXPECT_TRUE(d.counted);
    EXPECT_EQ(s.login(session("x")).in_use, 2) << "monitored sessions still count";
}

TEST(Admission, DryRunTurnsEveryRefusalIntoWouldReject) {
    Server s;
    s.policy.dry_run = true;
    s.rules = {make_rule("closed", std::nullopt, 0)};
    EXPECT_EQ(s.login(session("x")).verdict, Verdict::kWouldReject);
}

TEST(Admission, DisabledAdmitsEverythingButKeepsCounting) {
    Server s;
    s.policy.enabled = false;
    s.rules = {make_rule("one", std::nullopt, 1)};
    EXPECT_EQ(s.login(session("x")).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("x")).verdict, Verdict::kAdmit);
    s.policy.enabled = true;
    EXPECT_EQ(s.login(session("x")).in_use, 2);
}

TEST(Admission, UnmatchedSessionsUseThePerApplicationDefault) {
    Server s;
    s.policy.max_connections_per_application = 2;
    s.rules = {make_rule("etl", "etl", std::nullopt)};
    EXPECT_EQ(s.login(session("web")).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("web")).verdict, Verdict::kAdmit);
    const AdmissionDecision d = s.login(session("web"));
    EXPECT_EQ(d.verdict, Verdict::kReject);
    EXPECT_EQ(d.rule_index, kNoRule);
    EXPECT_EQ(d.cap_per, CapPer::kApplication);
    EXPECT_EQ(s.login(session("api")).verdict, Verdict::kAdmit);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(s.login(session("etl")).verdict, Verdict::kAdmit) << "a matched rule wins";
}

TEST(Admission, PerApplicationDefaultOffMeansNoCap) {
    Server s;
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s.login(session("web")).verdict, Verdict::kAdmit);
}

TEST(Admission, RuleSessionsCountsAcrossGroupsForThePeak) {
    Server s;
    s.rules = {make_rule("svc", "svc-*", 5, "application")};
    s.login(session("svc-a"));
    s.login(session("svc-b"));
    const AdmissionDecision d = s.login(session("svc-a"));
    EXPECT_EQ(d.rule_sessions, 2);
    EXPECT_EQ(d.in_use, 1);
}

TEST(Admission, LongNamesAreComparedClippedLikeTheSlotStoresThem) {
    Server s;
    s.rules = {make_rule("per-app", std::nullopt, 1, "application")};
    const std::string long_a(100, 'a');
    const std::string long_b = std::string(63, 'a') + "different tail";
    EXPECT_EQ(s.login(session(long_a.c_str())).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session(long_b.c_str())).verdict, Verdict::kReject) << "pg_stat_activity shows both the same";
}

// A key whose names were never set (views without data) fills a slot with empty names; under
// UBSan (the 18-assert target) a copy from their null data would be reported.
TEST(Admission, AKeyWithoutNamesFillsEmptyNames) {
    SessionSlot slot{};
    SlotTags tags{};
    fill_slot(&slot, &tags, SessionKey{}, "", true, 1);
    EXPECT_STREQ(slot.database, "");
    EXPECT_STREQ(slot.role, "");
    EXPECT_STREQ(slot.application, "");
    EXPECT_STREQ(slot.rule_name, "");
    EXPECT_TRUE(slot.in_use);
}

// A slot taken again starts without the timeouts an earlier session's rule gave (the views
// would show them for the new session otherwise).
TEST(Admission, AFilledSlotHasNoRuleTimeoutsYet) {
    SessionSlot slot{};
    SlotTags tags{};
    slot.statement_timeout_ms = 200;
    slot.lock_timeout_ms = 100;
    fill_slot(&slot, &tags, session("x"), "r", true, 1);
    EXPECT_EQ(slot.statement_timeout_ms, kUnset);
    EXPECT_EQ(slot.lock_timeout_ms, kUnset);
}

TEST(Admission, SameGroupIgnoresFreeAndUncountedSlots) {
    SessionSlot slot{};
    const SessionKey key = session("x");
    SlotTags tags{};
    fill_slot(&slot, &tags, key, "r", true, 1);
    EXPECT_TRUE(same_group(slot, "r", CapPer::kRule, key));
    EXPECT_FALSE(same_group(slot, "other", CapPer::kRule, key));
    slot.counted = false;
    EXPECT_FALSE(same_group(slot, "r", CapPer::kRule, key));
    slot.counted = true;
    slot.in_use = false;
    EXPECT_FALSE(same_group(slot, "r", CapPer::kRule, key));
}

namespace {
bool same_tags(const SlotTags& a, const SlotTags& b) {
    return a.counts == b.counts && a.rule == b.rule && a.database == b.database && a.role == b.role &&
           a.application == b.application && a.client_addr == b.client_addr;
}

// What decide_admission counted before the tags: every slot, compared in full.
AdmissionDecision count_by_full_scan(const Server& s, const SessionKey& key) {
    AdmissionDecision d = s.decide(key);
    const char* rule_name = d.rule_index == kNoRule ? "" : s.rules[d.rule_index].rule_name;
    d.in_use = 0;
    d.rule_sessions = 0;
    for (const SessionSlot& slot : s.slots) {
        if (!same_group(slot, rule_name, CapPer::kRule, key)) continue;
        ++d.rule_sessions;
        if (same_group(slot, rule_name, d.cap_per, key)) ++d.in_use;
    }
    return d;
}
}  // namespace

TEST(SlotTags, FreeAndUncountedSlotsHaveTheZeroTagsSharedMemoryStartsWith) {
    SessionSlot slot{};
    SlotTags tags{};
    EXPECT_TRUE(same_tags(tags_of(slot), SlotTags{}));
    fill_slot(&slot, &tags, session("x"), "r", /*counted=*/false, 1);
    EXPECT_TRUE(same_tags(tags, SlotTags{}));
    regroup_slot(&slot, &tags, "y", "r", /*counted=*/true);
    EXPECT_TRUE(tags.counts);
    release_slot(&slot, &tags);
    EXPECT_FALSE(slot.in_use);
    EXPECT_TRUE(same_tags(tags, SlotTags{}));
}

TEST(SlotTags, EveryWriterLeavesTheTagsOfTheSlotItWrote) {
    SessionSlot slot{};
    SlotTags tags{};
    const IpAddress v4 = ip("10.1.2.3");
    fill_slot(&slot, &tags, session("a", "bob", "shop", &v4), "r1", true, 7);
    EXPECT_TRUE(same_tags(tags, tags_of(slot)));
    const SlotTags before = tags;
    regroup_slot(&slot, &tags, "b", "r2", true);
    EXPECT_TRUE(same_tags(tags, tags_of(slot)));
    EXPECT_NE(tags.rule, before.rule);
    EXPECT_NE(tags.application, before.application);
    EXPECT_EQ(tags.role, before.role);
    EXPECT_EQ(tags.client_addr, before.client_addr);
}

TEST(SlotTags, EqualTagsOfAnotherGroupDoNotCount) {
    Server s;
    s.rules = {make_rule("svc", "svc-*", 1, "application"), make_rule("batch", "batch", 5)};
    EXPECT_EQ(s.login(session("svc-a")).verdict, Verdict::kAdmit);  // slot 0
    EXPECT_EQ(s.login(session("batch")).verdict, Verdict::kAdmit);  // slot 1
    // Make both slots look, by their tags alone, like members of svc-b's group: a hash
    // collision. Only a comparison of the slots themselves can tell.
    SessionSlot scratch{};
    SlotTags svc_b{};
    fill_slot(&scratch, &svc_b, session("svc-b"), "svc", true, 1);
    s.tags[0] = svc_b;
    s.tags[1] = svc_b;
    const AdmissionDecision d = s.decide(session("svc-b"));
    EXPECT_EQ(d.verdict, Verdict::kAdmit);
    EXPECT_EQ(d.in_use, 0);
    EXPECT_EQ(d.rule_sessions, 1) << "svc-a is of the same rule, batch is not";
}

TEST(SlotTags, CountsAgreeWithAFullScanOfTheSlots) {
    std::mt19937 random(20261123);
    const char* per[] = {"rule", "database", "role", "application", "client_addr"};
    const IpAddress addresses[] = {ip("10.0.0.1"), ip("10.0.0.2"), ip("2001:db8::1")};
    const char* apps[] = {"svc-a", "svc-b", "svc-c", "web", "batch", ""};
    const char* roles[] = {"alice", "bob"};
    const char* dbs[] = {"shop", "crm"};
    for (int round = 0; round < 20; ++round) {
        Server s;
        s.slots.assign(48, SessionSlot{});
        s.tags.assign(48, SlotTags{});
        s.rules = {make_rule("svc", "svc-*", 1000, per[random() % 5], "enforce", 10),
                   make_rule("web", "web", 1000, per[random() % 5], "enforce", 20)};
        for (int step = 0; step < 200; ++step) {
            const IpAddress* addr = random() % 4 == 0 ? nullptr : &addresses[random() % 3];
            const SessionKey key = session(apps[random() % 6], roles[random() % 2], dbs[random() % 2], addr);
            const AdmissionDecision fast = s.decide(key);
            const AdmissionDecision full = count_by_full_scan(s, key);
            ASSERT_EQ(fast.in_use, full.in_use) << "round " << round << " step " << step;
            ASSERT_EQ(fast.rule_sessions, full.rule_sessions) << "round " << round << " step " << step;
            const int action = static_cast<int>(random() % 3);
            const std::size_t i = random() % s.slots.size();
            if (action == 0) {
                s.login(key);
            } else if (action == 1 && s.slots[i].in_use) {
                s.logout(s.slots[i].pid);
            } else if (s.slots[i].in_use) {
                const AdmissionDecision d = s.decide(key, false, i);
                regroup_slot(&s.slots[i], &s.tags[i], key.application,
                             d.rule_index == kNoRule ? "" : s.rules[d.rule_index].rule_name, d.counted);
            }
            for (std::size_t k = 0; k < s.slots.size(); ++k) ASSERT_TRUE(same_tags(s.tags[k], tags_of(s.slots[k])));
        }
    }
}

namespace {
std::size_t slot_of(const Server& s, int pid) {
    for (std::size_t i = 0; i < s.slots.size(); ++i) {
        if (s.slots[i].in_use && s.slots[i].pid == pid) return i;
    }
    return kNewSession;
}
}  // namespace

TEST(Rename, IntoAFullGroupTheRenamedSessionIsRefusedNotTheOnesThere) {
    Server s;
    s.rules = {make_rule("svc", "svc-*", 1, "application")};
    EXPECT_EQ(s.login(session("svc-x")).verdict, Verdict::kAdmit);  // pid 1000 holds svc-x
    EXPECT_EQ(s.login(session("batch")).verdict, Verdict::kAdmit);  // pid 1001, matches no rule
    const std::size_t renamer = slot_of(s, 1001);
    const AdmissionDecision d = s.decide(session("svc-x"), false, renamer);
    EXPECT_EQ(d.verdict, Verdict::kReject);
    EXPECT_EQ(d.in_use, 1) << "only the session already there counts";
}

TEST(Rename, WithinItsOwnGroupItsPlaceIsNotCountedTwice) {
    Server s;
    s.rules = {make_rule("pool", "app-*", 2)};
    s.login(session("app-a"));
    s.login(session("app-b"));
    const AdmissionDecision d = s.decide(session("app-c"), false, slot_of(s, 1001));
    EXPECT_EQ(d.verdict, Verdict::kAdmit) << "renaming app-b to app-c keeps the same place in the full rule";
    EXPECT_EQ(d.in_use, 1);
}

TEST(Rename, IntoAGroupWithRoomIsAdmitted) {
    Server s;
    s.rules = {make_rule("svc", "svc-*", 1, "application")};
    s.login(session("svc-x"));
    s.login(session("batch"));
    const AdmissionDecision d = s.decide(session("svc-y"), false, slot_of(s, 1001));
    EXPECT_EQ(d.verdict, Verdict::kAdmit);
}

TEST(Pooler, ADecisionUnderAPoolerRuleSaysSoAndItsCapStaysExact) {
    Server s;
    CompiledRule pooler = make_rule("bouncer", std::nullopt, 2, "rule", "enforce", 10);
    pooler.pooler = true;
    s.rules = {pooler, make_rule("a", "a", 1)};
    // The pooler logs in under the name of whichever client it serves first: the pooler
    // rule comes first, so its sessions count under it, not under "a".
    const AdmissionDecision first = s.login(session("a"));
    EXPECT_TRUE(first.pooled);
    EXPECT_EQ(first.rule_index, 0);
    EXPECT_EQ(s.login(session("a")).verdict, Verdict::kAdmit);
    const AdmissionDecision third = s.login(session("b"));
    EXPECT_EQ(third.verdict, Verdict::kReject);
    EXPECT_TRUE(third.pooled);
    EXPECT_EQ(third.in_use, 2);
}

TEST(Pooler, OtherRulesAndTheDefaultsAreNotPooled) {
    Server s;
    CompiledRule pooler = make_rule("bouncer", "pgbouncer*", 5);
    pooler.pooler = true;
    s.rules = {pooler, make_rule("a", "a", 1)};
    EXPECT_FALSE(s.decide(session("a")).pooled);
    EXPECT_FALSE(s.decide(session("z")).pooled);
    EXPECT_TRUE(s.decide(session("pgbouncer-1")).pooled);
}

TEST(AdmissionText, MessagesNameTheGroupKind) {
    const CompiledRule app = make_rule("etl-cap", std::nullopt, 10, "application");
    AdmissionDecision d;
    d.verdict = Verdict::kReject;
    d.cap_per = CapPer::kApplication;
    d.cap = 10;
    d.in_use = 10;
    EXPECT_EQ(rejection_message(d, &app, session("etl")), "too many connections for application \"etl\"");
    EXPECT_EQ(rejection_detail(d, &app), "rule \"etl-cap\" allows 10 connections per application; 10 are in use");
    d.cap_per = CapPer::kRole;
    EXPECT_EQ(rejection_message(d, &app, session("etl", "bob")), "too many connections for role \"bob\"");
    d.cap_per = CapPer::kDatabase;
    EXPECT_EQ(rejection_message(d, &app, session("etl", "bob", "shop")), "too many connections for database \"shop\"");
    d.cap_per = CapPer::kClientAddr;
    const IpAddress v6 = ip("2001:db8::7");
    EXPECT_EQ(rejection_message(d, &app, session("e", "r", "d", &v6)),
              "too many connections for client address \"2001:db8::7\"");
    EXPECT_EQ(rejection_message(d, &app, session("e")), "too many connections for client address \"local\"");
    d.cap_per = CapPer::kRule;
    EXPECT_EQ(rejection_message(d, &app, session("e")), "too many connections for rule \"etl-cap\"");
}

TEST(AdmissionText, SingularAndDefaultWording) {
    AdmissionDecision d;
    d.cap_per = CapPer::kApplication;
    d.cap = 1;
    d.in_use = 1;
    EXPECT_EQ(rejection_detail(d, nullptr),
              "connguard.max_connections_per_application allows 1 connection per application; 1 is in use");
    d.cap_per = CapPer::kRule;
    EXPECT_EQ(rejection_message(d, nullptr, session("e")), "too many connections for rule \"(default)\"");
}

TEST(GroupSizes, CountsEachCapGroupInOnePass) {
    Server s;
    s.rules = {make_rule("svc", "svc-*", 5, "application"), make_rule("all", std::nullopt, std::nullopt)};
    s.login(session("svc-a"));
    s.login(session("svc-a"));
    s.login(session("svc-b"));
    s.login(session("web"));
    s.login(session("web"), /*exempt=*/true);
    const std::vector<std::int32_t> sizes = group_sizes(s.slots.data(), s.slots.size(), s.rules.data(), s.rules.size());
    EXPECT_EQ(sizes[0], 2);
    EXPECT_EQ(sizes[1], 2);
    EXPECT_EQ(sizes[2], 1);
    EXPECT_EQ(sizes[3], 1) << "the exempt session does not count";
    EXPECT_EQ(sizes[4], 1) << "but is shown the size of its group";
    EXPECT_EQ(sizes[5], 0) << "free slots";
}

TEST(GroupSizes, AgreeWithTheAdmissionCount) {
    Server s;
    s.rules = {make_rule("per-role", std::nullopt, 10, "role")};
    for (const char* role : {"a", "b", "a", "a", "c"}) s.login(session("x", role));
    const std::vector<std::int32_t> sizes = group_sizes(s.slots.data(), s.slots.size(), s.rules.data(), s.rules.size());
    EXPECT_EQ(sizes[0], s.login(session("x", "a")).in_use);
}

// A rename not yet kept: the session's own place moves to the new name, the old one is kept
// beside it, and both count for everyone else until the transaction ends.
TEST(KeptPlace, OthersCountBothPlacesTheSessionItselfNeither) {
    Server s;
    s.rules = {make_rule("a", "a", 1), make_rule("b", "b", 1)};
    ASSERT_EQ(s.login(session("a")).verdict, Verdict::kAdmit);
    const std::size_t own = 0, kept = 32;  // as in shared memory: kept places behind the sessions' own
    keep_place(s.slots[own], &s.slots[kept], &s.tags[kept]);
    ASSERT_EQ(s.decide(session("b"), false, own).verdict, Verdict::kAdmit);
    regroup_slot(&s.slots[own], &s.tags[own], "b", "b", true);

    EXPECT_EQ(s.decide(session("a")).verdict, Verdict::kReject) << "the kept place still holds a's only place";
    EXPECT_EQ(s.decide(session("b")).verdict, Verdict::kReject) << "and its own place b's";
    std::vector<RuleSieve> sieves(2);
    sieve_rules(s.rules.data(), 2, sieves.data());
    const AdmissionDecision back = decide_admission(s.rules.data(), sieves.data(), 2, s.policy, session("a"), false,
                                                    s.slots.data(), s.tags.data(), s.slots.size(), own, kept);
    EXPECT_EQ(back.verdict, Verdict::kAdmit);
    EXPECT_EQ(back.in_use, 0) << "the session itself counts in neither of its places";
}

TEST(KeptPlace, AKeptPlaceAlreadyInUseStaysTheOneFromBeforeTheTransaction) {
    Server s;
    s.rules = {make_rule("g", "*", 10, "application")};
    s.login(session("first"));
    keep_place(s.slots[0], &s.slots[32], &s.tags[32]);
    regroup_slot(&s.slots[0], &s.tags[0], "second", "g", true);
    keep_place(s.slots[0], &s.slots[32], &s.tags[32]);
    EXPECT_STREQ(s.slots[32].application, "first");
}

TEST(KeptPlace, SamePlaceFollowsTheRulesCapPer) {
    Server s;
    s.rules = {make_rule("per-rule", "r-*", 5), make_rule("per-app", "p-*", 5, "application")};
    s.login(session("r-1"));
    s.login(session("r-2"));
    s.login(session("p-1"));
    s.login(session("p-2"));
    const CompiledRule* rules = s.rules.data();
    EXPECT_TRUE(same_place(s.slots[0], s.slots[1], rules, 2)) << "one group per rule";
    EXPECT_FALSE(same_place(s.slots[2], s.slots[3], rules, 2)) << "one group per application";
    EXPECT_FALSE(same_place(s.slots[0], s.slots[2], rules, 2)) << "different rules";
    SessionSlot unused{};
    EXPECT_FALSE(same_place(s.slots[0], unused, rules, 2));
}

TEST(KeptPlace, SettlingFollowsTheNamePostgresqlKeeps) {
    Server s;
    s.rules = {make_rule("a", "a", 1), make_rule("b", "b", 1)};
    s.login(session("a"));
    SessionSlot own = s.slots[0];
    SessionSlot kept[kKeptPlaces]{};
    const SessionSlot* places[kKeptPlaces] = {&kept[0], &kept[1]};
    EXPECT_EQ(settle_places(own, places, kKeptPlaces, "a").how, Settle::kOwn) << "no rename at all";
    SlotTags kept_tags{};
    keep_place(own, &kept[1], &kept_tags);
    SlotTags own_tags{};
    regroup_slot(&own, &own_tags, "b", "b", true);
    EXPECT_EQ(settle_places(own, places, kKeptPlaces, "b").how, Settle::kOwn) << "committed: the new name stays";
    const SettleChoice back = settle_places(own, places, kKeptPlaces, "a");
    EXPECT_EQ(back.how, Settle::kKept) << "rolled back: the old name's place is still there";
    EXPECT_EQ(back.kept, 1);
    EXPECT_EQ(settle_places(own, places, kKeptPlaces, "c").how, Settle::kDecide)
        << "RESET or DISCARD to a name no place is under";
    EXPECT_EQ(settle_places(own, places, kKeptPlaces, std::string(200, 'x').c_str()).how, Settle::kDecide);
}

// Which places a SET keeps: the name the session has now (this SET may save it), and those
// PostgreSQL saved earlier in the transaction; places for names nothing restores go.
TEST(KeptPlace, PlanKeepsTheCurrentNameAndEveryRestorableOne) {
    SessionSlot kept[kKeptPlaces]{};
    const SessionSlot* places[kKeptPlaces] = {&kept[0], &kept[1]};
    const auto hold = [&](int k, const char* name) {
        kept[k].in_use = true;
        std::snprintf(kept[k].application, sizeof kept[k].application, "%s", name);
    };
    // BEGIN; SET b: nothing saved yet, a is kept.
    KeepPlan plan = plan_kept_places("a", places, kKeptPlaces, nullptr, 0);
    EXPECT_TRUE(plan.fits);
    EXPECT_EQ(plan.keep_into, 0);
    EXPECT_EQ(plan.release, 0U);
    hold(0, "a");
    // ...; SET c at the same level: the stack saved a only; b is kept (this SET may save it).
    const std::string_view saved_a[] = {"a"};
    plan = plan_kept_places("b", places, kKeptPlaces, saved_a, 1);
    EXPECT_EQ(plan.keep_into, 1);
    EXPECT_EQ(plan.release, 0U);
    hold(1, "b");
    // ...; SET d, still at the same level: b can no longer come back, its place goes and c's
    // is kept in it.
    plan = plan_kept_places("c", places, kKeptPlaces, saved_a, 1);
    EXPECT_TRUE(plan.fits);
    EXPECT_EQ(plan.release, 1U << 1);
    EXPECT_EQ(plan.keep_into, 1);
    // BEGIN; SET b; SAVEPOINT s; SET c; SAVEPOINT t; SET d: a and b saved, c current: no room.
    const std::string_view saved_a_b[] = {"a", "b"};
    plan = plan_kept_places("c", places, kKeptPlaces, saved_a_b, 2);
    EXPECT_FALSE(plan.fits);
    EXPECT_EQ(plan.release, 0U);
    // The current name already kept (SET b; SAVEPOINT s; SET a; SET c): nothing more to keep.
    plan = plan_kept_places("b", places, kKeptPlaces, saved_a_b, 2);
    EXPECT_TRUE(plan.fits);
    EXPECT_EQ(plan.keep_into, kNoKeep);
}

TEST(KeptPlace, AShadowedPlaceCountsNowhereUntilItsSessionMovesOn) {
    Server s;
    s.rules = {make_rule("ab", "?", 1), make_rule("cc", "cc", 1)};
    ASSERT_EQ(s.login(session("a")).verdict, Verdict::kAdmit);
    const std::size_t own = 0, kept = 32;
    keep_place(s.slots[own], &s.slots[kept], &s.tags[kept]);
    regroup_slot(&s.slots[own], &s.tags[own], "b", "ab", true);  // SET b: the same group as a
    shadow_kept_place(s.slots[own], &s.slots[kept], &s.tags[kept], s.rules.data(), s.rules.size());
    EXPECT_TRUE(s.slots[kept].shadowed);
    EXPECT_EQ(s.decide(session("a")).in_use, 1) << "the session counts once in its group, not twice";
    regroup_slot(&s.slots[own], &s.tags[own], "cc", "cc", true);  // SET cc: elsewhere
    shadow_kept_place(s.slots[own], &s.slots[kept], &s.tags[kept], s.rules.data(), s.rules.size());
    EXPECT_FALSE(s.slots[kept].shadowed);
    EXPECT_EQ(s.decide(session("b")).verdict, Verdict::kReject) << "the kept place holds the group again";
}

// One group key and one cap everywhere: over random rules (every cap_per, every mode) and
// random logins (IPv4 and IPv6 addresses with the same bytes, Unix sockets), the count a
// login is decided on, the group sizes the views show, capacity's scopes and the caps of
// admission, the views and pool_advice all agree.
TEST(GroupIdentity, AdmissionViewsAndCapacityAgree) {
    std::mt19937 random(5);
    const char* per[] = {"rule", "database", "role", "application", "client_addr"};
    const char* modes[] = {"enforce", "enforce", "monitor", "exempt"};
    const char* apps[] = {"etl", "web", "etl-2", "batch"};
    const char* addresses[] = {"10.0.0.1", "a00:1::", "10.0.0.2", "a00:2::", nullptr};
    std::vector<IpAddress> parsed;
    for (const char* a : addresses) {
        if (a != nullptr) parsed.push_back(ip(a));
    }
    for (int round = 0; round < 200; ++round) {
        Server s;
        const int rule_count = 1 + static_cast<int>(random() % 5);
        for (int r = 0; r < rule_count; ++r) {
            const std::string name = "r" + std::to_string(r);
            const char* pattern = r == rule_count - 1 ? "*" : apps[random() % 4];
            s.rules.push_back(make_rule(name.c_str(), std::string_view(pattern), 1 + static_cast<int>(random() % 4),
                                        per[random() % 5], modes[random() % 4], r));
        }
        s.policy.max_connections_per_application = static_cast<std::int32_t>(random() % 3);
        for (int login = 0; login < 40; ++login) {
            const std::size_t a = random() % 5;
            const IpAddress* address = a < parsed.size() ? &parsed[a] : nullptr;
            s.login(session(apps[random() % 4], random() % 2 ? "alice" : "bob", random() % 2 ? "db1" : "db2", address),
                    random() % 10 == 0);
        }
        const std::vector<std::int32_t> sizes = group_sizes(s.slots.data(), s.slots.size(), s.rules.data(), s.rules.size());
        for (std::size_t i = 0; i < s.slots.size(); ++i) {
            const SessionSlot& slot = s.slots[i];
            if (!slot.in_use || !slot.counted) continue;
            const CompiledRule* rule = rule_named(s.rules.data(), s.rules.size(), slot.rule_name);
            const CapPer cap_per = group_cap_per(rule);
            const SessionKey key = key_of(slot, slot.application);
            int same = 0;
            for (const SessionSlot& other : s.slots) {
                const bool by_compare = same_group(other, slot.rule_name, cap_per, key);
                const bool by_key = other.in_use && other.counted &&
                                    group_key_text(group_key(other.rule_name, cap_per, key_of(other, other.application))) ==
                                        group_key_text(group_key(slot.rule_name, cap_per, key));
                ASSERT_EQ(by_compare, by_key) << "round " << round;
                same += by_compare ? 1 : 0;
            }
            ASSERT_EQ(sizes[i], same) << "the views' group size, round " << round;
            const AdmissionDecision again = s.decide(key, false, i);
            ASSERT_EQ(again.in_use, same - 1) << "the count admission decides on, round " << round;
            ASSERT_EQ(again.cap, group_cap(rule, s.policy.max_connections_per_application));
            if (rule != nullptr && rule->mode == Mode::kEnforce && again.cap >= 0) {
                ASSERT_LE(same, again.cap);
            }
        }
        const Capacity c = capacity(s.rules.data(), s.rules.size(), s.slots.data(), s.slots.size(),
                                    s.policy.max_connections_per_application, 1000);
        for (const CapacityRow& row : c.rows) {
            const CompiledRule* rule = rule_named(s.rules.data(), s.rules.size(), row.rule_name.c_str());
            if (rule == nullptr) continue;
            ASSERT_EQ(row.cap, group_cap(rule, s.policy.max_connections_per_application)) << "capacity's cap";
            if (row.cap < 0 || rule->cap_per == CapPer::kRule) continue;
            std::set<std::string> keys;
            for (const SessionSlot& slot : s.slots) {
                if (slot.in_use && slot.counted && std::string(slot.rule_name) == row.rule_name) {
                    keys.insert(group_key_text(group_key(slot.rule_name, rule->cap_per, key_of(slot, slot.application))));
                }
            }
            ASSERT_EQ(row.scopes, std::max<std::int32_t>(1, static_cast<std::int32_t>(keys.size()))) << "capacity's scopes";
        }
    }
}

TEST(GroupIdentity, AddressFamiliesAreDifferentGroups) {
    Server s;
    s.rules = {make_rule("per-address", std::nullopt, 1, "client_addr")};
    const IpAddress v4 = ip("10.0.0.1"), v6 = ip("a00:1::");
    ASSERT_EQ(s.login(session("x", "app", "db", &v4)).verdict, Verdict::kAdmit);
    EXPECT_EQ(s.login(session("x", "app", "db", &v6)).verdict, Verdict::kAdmit) << "a00:1:: is not 10.0.0.1";
    const std::vector<std::int32_t> sizes = group_sizes(s.slots.data(), s.slots.size(), s.rules.data(), s.rules.size());
    EXPECT_EQ(sizes[0], 1);
    EXPECT_EQ(sizes[1], 1);
}

TEST(GroupIdentity, AnExemptRuleHasNoCap) {
    const CompiledRule exempt = make_rule("vip", "vip", 5, "rule", "exempt");
    EXPECT_EQ(group_cap(&exempt, 0), -1);
    const CompiledRule monitor = make_rule("m", "m", 5, "rule", "monitor");
    EXPECT_EQ(group_cap(&monitor, 0), 5) << "a monitor rule's cap is the one being rehearsed";
    EXPECT_EQ(group_cap(nullptr, 0), -1);
    EXPECT_EQ(group_cap(nullptr, 7), 7);
}
