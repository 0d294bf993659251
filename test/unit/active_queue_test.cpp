// max_active's queue: places up to the limit, first come first served, a place handed to the
// head of the queue by the session giving it back, leaving the queue from anywhere in it, groups
// kept apart by their whole key, and a property test of random take/give-back sequences
// against a plain model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/active_queue.h"
#include "core/rule_compiler.h"
#include "core/rule_text.h"
#include "rule_fixtures.h"

using namespace connguard::core;

namespace {

struct Table {
    explicit Table(int capacity) : entries(capacity), groups(capacity) {
        table = ActiveTable{entries.data(), groups.data(), capacity};
        reset_active_table(table);
    }
    std::vector<ActiveEntry> entries;
    std::vector<ActiveGroup> groups;
    ActiveTable table{};
};

// The key of a session's group, as the shell makes it: from core::group_key.
ActiveKey key_for(const char* rule, CapPer per, const char* database, const char* role, const char* application,
                  const IpAddress* address) {
    SessionKey session;
    session.database = database;
    session.role = role;
    session.application = application;
    session.client_addr = address;
    return active_key(group_key(rule, per, session));
}

ActiveKey app(const char* name) { return key_for("r", CapPer::kApplication, "db", "role", name, nullptr); }

std::vector<std::int32_t> give(const ActiveTable& t, std::int32_t self) {
    std::int32_t woken[8];
    const int n = give_back(t, self, woken, 8);
    return {woken, woken + std::min(n, 8)};
}

}  // namespace

TEST(ActiveQueue, RunsUpToTheLimitThenQueues) {
    Table t(8);
    const ActiveKey key = app("web");
    EXPECT_EQ(take_place(t.table, 0, key, 2, true, 10), Take::kRun);
    EXPECT_EQ(take_place(t.table, 1, key, 2, true, 11), Take::kRun);
    EXPECT_EQ(take_place(t.table, 2, key, 2, true, 12), Take::kQueued);
    EXPECT_EQ(t.entries[2].state, ActiveState::kQueued);
    EXPECT_FALSE(place_granted(t.table, 2));
    EXPECT_EQ(longest_wait_us(t.table, t.entries[2].group, 112), 100);
}

TEST(ActiveQueue, TheGiverHandsItsPlaceToTheHeadInOrder) {
    Table t(8);
    const ActiveKey key = app("web");
    take_place(t.table, 0, key, 1, true, 0);
    take_place(t.table, 3, key, 1, true, 1);
    take_place(t.table, 1, key, 1, true, 2);
    take_place(t.table, 2, key, 1, true, 3);
    EXPECT_EQ(give(t.table, 0), std::vector<std::int32_t>{3});
    EXPECT_TRUE(place_granted(t.table, 3));
    EXPECT_FALSE(place_granted(t.table, 1));
    EXPECT_EQ(give(t.table, 3), std::vector<std::int32_t>{1});
    EXPECT_EQ(give(t.table, 1), std::vector<std::int32_t>{2});
    EXPECT_EQ(give(t.table, 2), std::vector<std::int32_t>{});
    EXPECT_EQ(take_place(t.table, 0, key, 1, true, 4), Take::kRun);  // every place is back
}

TEST(ActiveQueue, ANewcomerDoesNotOvertakeTheQueue) {
    Table t(8);
    const ActiveKey key = app("web");
    take_place(t.table, 0, key, 1, true, 0);
    take_place(t.table, 1, key, 1, true, 0);  // queued
    // The limit is raised to 2: a place is free, but 1 queued first.
    EXPECT_EQ(take_place(t.table, 2, key, 2, true, 0), Take::kQueued);
    EXPECT_TRUE(place_granted(t.table, 1));
    EXPECT_FALSE(place_granted(t.table, 2));
}

TEST(ActiveQueue, LeavingTheQueueFromTheMiddleKeepsTheOrder) {
    Table t(8);
    const ActiveKey key = app("web");
    take_place(t.table, 0, key, 1, true, 0);
    for (int i = 1; i <= 4; ++i) take_place(t.table, i, key, 1, true, i);
    EXPECT_EQ(give(t.table, 2), std::vector<std::int32_t>{});  // gave up waiting
    EXPECT_EQ(give(t.table, 4), std::vector<std::int32_t>{});  // the tail gave up too
    EXPECT_EQ(give(t.table, 0), std::vector<std::int32_t>{1});
    EXPECT_EQ(give(t.table, 1), std::vector<std::int32_t>{3});
    take_place(t.table, 5, key, 1, true, 9);  // queues behind nobody but the running 3
    EXPECT_EQ(give(t.table, 3), std::vector<std::int32_t>{5});
}

TEST(ActiveQueue, GivingBackNothingChangesNothing) {
    Table t(4);
    EXPECT_EQ(give(t.table, 1), std::vector<std::int32_t>{});
    EXPECT_FALSE(place_granted(t.table, 1));
}

TEST(ActiveQueue, WithoutQueueingItRunsOverTheLimit) {
    Table t(4);
    const ActiveKey key = app("web");
    EXPECT_EQ(take_place(t.table, 0, key, 1, false, 0), Take::kRun);
    EXPECT_EQ(take_place(t.table, 1, key, 1, false, 0), Take::kOverRun);
    EXPECT_EQ(t.groups[t.entries[1].group].running, 2);
    give(t.table, 0);
    give(t.table, 1);
    EXPECT_EQ(take_place(t.table, 2, key, 1, true, 0), Take::kRun);
}

TEST(ActiveQueue, GroupsAreKeptApartByTheirWholeKey) {
    Table t(8);
    EXPECT_EQ(take_place(t.table, 0, app("web"), 1, true, 0), Take::kRun);
    EXPECT_EQ(take_place(t.table, 1, app("jobs"), 1, true, 0), Take::kRun);
    IpAddress v4{AddressFamily::kIPv4, {10, 0, 0, 1}};
    IpAddress v6{AddressFamily::kIPv6, {10, 0, 0, 1}};
    const ActiveKey a = key_for("r", CapPer::kClientAddr, "db", "role", "x", &v4);
    const ActiveKey b = key_for("r", CapPer::kClientAddr, "db", "role", "x", &v6);
    const ActiveKey socket = key_for("r", CapPer::kClientAddr, "db", "role", "x", nullptr);
    EXPECT_FALSE(same_active_key(a, b));
    EXPECT_EQ(take_place(t.table, 2, a, 1, true, 0), Take::kRun);
    EXPECT_EQ(take_place(t.table, 3, b, 1, true, 0), Take::kRun);
    EXPECT_EQ(take_place(t.table, 4, socket, 1, true, 0), Take::kRun);
    // Per rule: every session of the rule is one group whatever its application.
    const ActiveKey r1 = key_for("all", CapPer::kRule, "db", "role", "web", nullptr);
    const ActiveKey r2 = key_for("all", CapPer::kRule, "db2", "role2", "jobs", &v4);
    EXPECT_TRUE(same_active_key(r1, r2));
    EXPECT_EQ(take_place(t.table, 5, r1, 1, true, 0), Take::kRun);
    EXPECT_EQ(take_place(t.table, 6, r2, 1, true, 0), Take::kQueued);
}

TEST(ActiveQueue, AFullTableOfEmptyGroupsIsReused) {
    Table t(3);
    // Many groups over time, never more than three sessions: always room.
    for (int round = 0; round < 50; ++round) {
        char name[16];
        snprintf(name, sizeof name, "app%d", round);
        EXPECT_EQ(take_place(t.table, round % 3, app(name), 1, true, 0), Take::kRun) << round;
        give(t.table, round % 3);
    }
    EXPECT_EQ(take_place(t.table, 0, app("a"), 1, true, 0), Take::kRun);
    EXPECT_EQ(take_place(t.table, 1, app("b"), 1, true, 0), Take::kRun);
    EXPECT_EQ(take_place(t.table, 2, app("a"), 1, true, 0), Take::kQueued);
    EXPECT_EQ(give(t.table, 0), std::vector<std::int32_t>{2});
}

// Random sessions over a few groups and limits take, give back and give up waiting; a plain
// model (a count and a deque per group) says what must happen; the table must agree, wake
// exactly the model's heads, and (while no limit changes) never run more than the limit.
TEST(ActiveQueue, PropertyAgreesWithAPlainModel) {
    constexpr int kSessions = 24;
    std::mt19937 random(20261205);
    for (int trial = 0; trial < 200; ++trial) {
        Table t(kSessions);
        const char* names[] = {"a", "b", "c"};
        std::map<std::string, int> running;
        std::map<std::string, std::deque<int>> queue;
        std::map<std::string, int> limit;
        std::vector<std::string> group_of(kSessions);
        std::vector<int> state(kSessions, 0);  // 0 none, 1 running, 2 queued
        for (int step = 0; step < 400; ++step) {
            const int s = static_cast<int>(random() % kSessions);
            if (state[s] == 0) {
                const std::string g = names[random() % 3];
                // Even trials keep each group's limit; odd ones change it at every take (a reload).
                const bool fixed = trial % 2 == 0 && limit.count(g) != 0;
                const int l = fixed ? limit[g] : 1 + static_cast<int>(random() % 3);
                limit[g] = l;
                const Take took = take_place(t.table, s, app(g.c_str()), l, true, step);
                group_of[s] = g;
                if (running[g] < l && queue[g].empty()) {
                    ASSERT_EQ(took, Take::kRun);
                    running[g] += 1;
                    state[s] = 1;
                } else {
                    ASSERT_EQ(took, Take::kQueued);
                    queue[g].push_back(s);
                    state[s] = 2;
                }
                // The raised limit is found by the queue's heads themselves.
                while (!queue[g].empty() && running[g] < l) {
                    const int head = queue[g].front();
                    ASSERT_TRUE(place_granted(t.table, head));
                    queue[g].pop_front();
                    running[g] += 1;
                    state[head] = 1;
                }
            } else {
                const std::string g = group_of[s];
                const std::vector<std::int32_t> woken = give(t.table, s);
                if (state[s] == 1) {
                    running[g] -= 1;
                } else {
                    queue[g].erase(std::find(queue[g].begin(), queue[g].end(), s));
                }
                state[s] = 0;
                std::vector<std::int32_t> expected;
                while (!queue[g].empty() && running[g] < limit[g]) {
                    expected.push_back(queue[g].front());
                    state[queue[g].front()] = 1;
                    queue[g].pop_front();
                    running[g] += 1;
                }
                ASSERT_EQ(woken, expected);
            }
            for (int i = 0; i < kSessions; ++i) {
                ASSERT_EQ(t.entries[i].state == ActiveState::kRunning, state[i] == 1);
                ASSERT_EQ(t.entries[i].state == ActiveState::kQueued, state[i] == 2);
            }
            if (trial % 2 == 0) {
                for (const auto& [g, n] : running) ASSERT_LE(n, limit[g]);
            }
        }
    }
}

TEST(ActiveQueue, ValidationAndTheRuleFile) {
    RuleInput in = rule_input("web");
    CompiledRule out;
    in.max_active = 0;
    EXPECT_EQ(compile_rule(in, &out).field, "max_active");
    in.max_active = kMaxConnectionsLimit + 1;
    EXPECT_EQ(compile_rule(in, &out).field, "max_active");
    in.max_active = 3;
    in.active_wait_us = -1;
    EXPECT_EQ(compile_rule(in, &out).field, "active_wait");
    in.active_wait_us = 0;  // fails at once when every place is taken
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_EQ(out.max_active, 3);
    EXPECT_EQ(out.active_wait_us, 0);
    const CompiledRule rules[] = {out, compiled(rule_input("plain"))};
    const CompiledRuleSet back = decode_rule_set(encode_rule_set(rules, 2), 16);
    ASSERT_TRUE(back.error.empty()) << back.error;
    for (const CompiledRule& r : back.rules) {
        const bool web = r.name() == "web";
        EXPECT_EQ(r.max_active, web ? 3 : -1);
        EXPECT_EQ(r.active_wait_us, web ? 0 : kUnset);
    }
}

// max_active's queues group sessions exactly as caps do: two sessions share a queue when, and
// only when, core::group_key says they share a group (every cap_per, both address families,
// Unix sockets, names longer than a slot holds).
TEST(ActiveQueue, KeysAgreeWithTheOneDefinitionOfAGroup) {
    std::mt19937 random(27);
    const CapPer pers[] = {CapPer::kRule, CapPer::kDatabase, CapPer::kRole, CapPer::kApplication,
                           CapPer::kClientAddr};
    const std::string long_name(100, 'n');
    const std::string longer_name = long_name + "x";  // the same name as a slot holds it
    const char* names[] = {"a", "b", long_name.c_str(), longer_name.c_str()};
    const char* rules[] = {"r", "s"};
    IpAddress addresses[] = {{AddressFamily::kIPv4, {10, 0, 0, 1}}, {AddressFamily::kIPv6, {10, 0, 0, 1}},
                             {AddressFamily::kIPv4, {10, 0, 0, 2}}};
    const auto pick = [&](int n) { return static_cast<int>(random() % n); };
    int same = 0;
    for (int round = 0; round < 5000; ++round) {
        SessionKey one, two;
        std::string names_one[3], names_two[3];
        for (int i = 0; i < 3; ++i) {
            names_one[i] = names[pick(4)];
            names_two[i] = names[pick(4)];
        }
        one.database = names_one[0], one.role = names_one[1], one.application = names_one[2];
        two.database = names_two[0], two.role = names_two[1], two.application = names_two[2];
        const int a = pick(4), b = pick(4);
        one.client_addr = a < 3 ? &addresses[a] : nullptr;
        two.client_addr = b < 3 ? &addresses[b] : nullptr;
        const CapPer per = pers[pick(5)];
        const char* rule_one = rules[pick(2)];
        const char* rule_two = rules[pick(2)];
        const GroupKey g1 = group_key(rule_one, per, one);
        const GroupKey g2 = group_key(rule_two, per, two);
        EXPECT_EQ(same_active_key(active_key(g1), active_key(g2)), g1 == g2) << "round " << round;
        same += g1 == g2;
    }
    EXPECT_GT(same, 100) << "the draw makes equal groups often enough to test them";
}
