// The login queue's order and bound (core/login_queue).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core/login_queue.h"

using namespace connguard::core;

namespace {

ActiveKey group_of(const char* application) {
    SessionKey session;
    session.database = "db";
    session.role = "app";
    session.application = application;
    return active_key(group_key("r", CapPer::kApplication, session));
}

}  // namespace

TEST(LoginQueue, RankIsByTicketWithinItsOwnGroup) {
    std::vector<LoginWaiter> waiters(6, LoginWaiter{});
    const auto wait = [&](int i, std::uint64_t ticket, const char* application) {
        waiters[i] = LoginWaiter{true, false, ticket, 0, group_of(application), {}, 0};
    };
    EXPECT_EQ(login_queue_length(waiters.data(), 6, group_of("web")), 0);
    wait(4, 7, "web");
    wait(1, 9, "web");
    wait(2, 3, "jobs");
    EXPECT_EQ(login_queue_length(waiters.data(), 6, group_of("web")), 2);
    EXPECT_EQ(login_queue_length(waiters.data(), 6, group_of("jobs")), 1);
    EXPECT_EQ(login_queue_rank(waiters.data(), 6, group_of("web"), 4), 0) << "slot order does not matter, tickets do";
    EXPECT_EQ(login_queue_rank(waiters.data(), 6, group_of("web"), 1), 1);
    EXPECT_EQ(login_queue_rank(waiters.data(), 6, group_of("jobs"), 2), 0) << "other groups do not count";
    waiters[4].waiting = false;
    EXPECT_EQ(login_queue_length(waiters.data(), 6, group_of("web")), 1);
    EXPECT_EQ(login_queue_rank(waiters.data(), 6, group_of("web"), 1), 0) << "the one before it left: it is first";
}

TEST(LoginQueue, APositionCountsFromOneInItsOwnGroupsLine) {
    std::vector<LoginWaiter> waiters(5, LoginWaiter{});
    waiters[3] = LoginWaiter{true, false, 4, 0, group_of("web"), {}, 0};
    waiters[0] = LoginWaiter{true, false, 8, 0, group_of("web"), {}, 0};
    waiters[1] = LoginWaiter{true, false, 6, 0, group_of("jobs"), {}, 0};
    EXPECT_EQ(login_queue_position(waiters.data(), 5, 3), 1);
    EXPECT_EQ(login_queue_position(waiters.data(), 5, 0), 2);
    EXPECT_EQ(login_queue_position(waiters.data(), 5, 1), 1) << "the other group's line is its own";
    EXPECT_EQ(login_queue_position(waiters.data(), 5, 2), 0) << "not waiting";
}

TEST(LoginQueue, EachPlaceGivenBackWakesOneMoreWaiterInOrder) {
    std::vector<LoginWaiter> waiters(4, LoginWaiter{});
    for (int i = 0; i < 3; ++i) waiters[i] = LoginWaiter{true, false, static_cast<std::uint64_t>(10 - i), 0, group_of("web"), {}, 0};
    int first = login_queue_next_to_wake(waiters.data(), 4, group_of("web"));
    EXPECT_EQ(first, 2) << "the lowest ticket";
    waiters[first].woken = true;
    int second = login_queue_next_to_wake(waiters.data(), 4, group_of("web"));
    EXPECT_EQ(second, 1) << "a second place given back wakes the second in line, not the first again";
    waiters[second].woken = true;
    waiters[0].woken = true;
    EXPECT_EQ(login_queue_next_to_wake(waiters.data(), 4, group_of("web")), kNoWaiter) << "all are looking already";
}

TEST(LoginQueue, TurnsKeepOrderAndTheBound) {
    // A free place, nobody waiting: in at once.
    EXPECT_EQ(login_turn(1, false, 0, 0, 4, true), LoginTurn::kAdmit);
    // A free place, but others wait: behind them, not past them.
    EXPECT_EQ(login_turn(1, false, 0, 2, 4, true), LoginTurn::kWait);
    EXPECT_EQ(login_turn(3, false, 0, 2, 4, true), LoginTurn::kAdmit) << "more places free than waiters";
    EXPECT_EQ(login_turn(1, true, 1, 3, 4, true), LoginTurn::kWait) << "second in line, one place";
    EXPECT_EQ(login_turn(2, true, 1, 3, 4, true), LoginTurn::kAdmit) << "second in line, two places";
    EXPECT_EQ(login_turn(1, true, 0, 3, 4, true), LoginTurn::kAdmit);
    // Full: waits while the queue has room and its time lasts.
    EXPECT_EQ(login_turn(0, false, 0, 3, 4, true), LoginTurn::kWait);
    EXPECT_EQ(login_turn(0, false, 0, 4, 4, true), LoginTurn::kQueueFull);
    EXPECT_EQ(login_turn(0, true, 3, 4, 4, true), LoginTurn::kWait) << "the bound is for joining";
    EXPECT_EQ(login_turn(0, true, 0, 1, 4, false), LoginTurn::kRefuse);
    EXPECT_EQ(login_turn(0, false, 0, 0, 0, true), LoginTurn::kQueueFull) << "login_queue_size 0: no queue";
    EXPECT_EQ(login_turn(0, false, 0, 0, 4, false), LoginTurn::kRefuse) << "login_wait 0";
    EXPECT_EQ(login_turn(1, true, 2, 3, 4, false), LoginTurn::kRefuse) << "its time is up, others first";
}

// Over random arrivals and departures against a group with a cap, with woken waiters looking in
// random order: never more than the cap hold places, never more than the bound wait, and no
// waiter goes in while one before it in line is left waiting.
TEST(LoginQueue, RandomArrivalsAreAdmittedInOrderWithinTheBound) {
    std::mt19937 random(29);
    const int slots = 16, cap = 3, bound = 4;
    const ActiveKey group = group_of("web");
    int admitted_from_line = 0;
    for (int round = 0; round < 200; ++round) {
        std::vector<LoginWaiter> waiters(slots, LoginWaiter{});
        std::vector<bool> holding(slots, false);
        std::uint64_t tickets = 0;
        int in_use = 0;
        for (int step = 0; step < 300; ++step) {
            // Now and then two sessions leave at once.
            for (int leaves = 1 + static_cast<int>(random() % 2); leaves > 0; --leaves) {
                const int who = static_cast<int>(random() % slots);
                if (holding[who]) {
                    holding[who] = false;
                    --in_use;
                } else if (!waiters[who].waiting) {  // a new login in this slot
                    const LoginTurn turn = login_turn(cap - in_use, false, 0,
                                                      login_queue_length(waiters.data(), slots, group), bound, true);
                    if (turn == LoginTurn::kAdmit) {
                        holding[who] = true;
                        ++in_use;
                    } else if (turn == LoginTurn::kWait) {
                        waiters[who] = LoginWaiter{true, false, ++tickets, 0, group, {}, 0};
                    }
                }
            }
            std::vector<std::uint64_t> went_in;
            const int start = static_cast<int>(random() % slots);
            for (int k = 0; k < slots; ++k) {
                const int w = (start + k) % slots;
                if (!waiters[w].waiting) continue;
                const LoginTurn turn = login_turn(cap - in_use, true, login_queue_rank(waiters.data(), slots, group, w),
                                                  login_queue_length(waiters.data(), slots, group), bound, true);
                if (turn != LoginTurn::kAdmit) continue;
                went_in.push_back(waiters[w].ticket);
                waiters[w].waiting = false;
                holding[w] = true;
                ++in_use;
                ++admitted_from_line;
            }
            ASSERT_LE(in_use, cap);
            ASSERT_LE(login_queue_length(waiters.data(), slots, group), bound);
            for (const LoginWaiter& still : waiters) {
                if (!still.waiting) continue;
                for (std::uint64_t ticket : went_in) ASSERT_LT(ticket, still.ticket) << "round " << round << ": overtaken";
            }
        }
    }
    EXPECT_GT(admitted_from_line, 1000) << "the draw makes logins wait and go in often enough to test the order";
}
