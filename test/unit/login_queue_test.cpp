// The login queue's order and bound (core/login_queue).
#include <gtest/gtest.h>

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

TEST(LoginQueue, TheHeadIsTheLowestTicketOfItsOwnGroup) {
    std::vector<LoginWaiter> waiters(6, LoginWaiter{});
    const auto wait = [&](int i, std::uint64_t ticket, const char* application) {
        waiters[i] = LoginWaiter{true, ticket, 0, group_of(application)};
    };
    EXPECT_EQ(login_queue_head(waiters.data(), 6, group_of("web")), kNoWaiter);
    wait(4, 7, "web");
    wait(1, 9, "web");
    wait(2, 3, "jobs");
    EXPECT_EQ(login_queue_head(waiters.data(), 6, group_of("web")), 4) << "slot order does not matter, tickets do";
    EXPECT_EQ(login_queue_head(waiters.data(), 6, group_of("jobs")), 2);
    EXPECT_EQ(login_queue_length(waiters.data(), 6, group_of("web")), 2);
    waiters[4].waiting = false;
    EXPECT_EQ(login_queue_head(waiters.data(), 6, group_of("web")), 1);
}

TEST(LoginQueue, TurnsKeepOrderAndTheBound) {
    // Room, nobody waiting: in at once.
    EXPECT_EQ(login_turn(true, false, false, 0, 4, true), LoginTurn::kAdmit);
    // Room, but others wait: behind them, not past them.
    EXPECT_EQ(login_turn(true, false, false, 2, 4, true), LoginTurn::kWait);
    EXPECT_EQ(login_turn(true, true, false, 3, 4, true), LoginTurn::kWait);
    EXPECT_EQ(login_turn(true, true, true, 3, 4, true), LoginTurn::kAdmit);
    // Full: waits while the queue has room and its time lasts.
    EXPECT_EQ(login_turn(false, false, false, 3, 4, true), LoginTurn::kWait);
    EXPECT_EQ(login_turn(false, false, false, 4, 4, true), LoginTurn::kQueueFull);
    EXPECT_EQ(login_turn(false, true, false, 4, 4, true), LoginTurn::kWait) << "the bound is for joining";
    EXPECT_EQ(login_turn(false, true, true, 1, 4, false), LoginTurn::kRefuse);
    EXPECT_EQ(login_turn(false, false, false, 0, 0, true), LoginTurn::kQueueFull) << "login_queue_size 0: no queue";
    EXPECT_EQ(login_turn(false, false, false, 0, 4, false), LoginTurn::kRefuse) << "login_wait 0";
    EXPECT_EQ(login_turn(true, true, false, 2, 4, false), LoginTurn::kRefuse) << "its time is up, others first";
}

// Over random arrivals and departures against a group with a cap, logins are admitted in the
// order they arrived, never more than the cap hold places, and never more than the bound wait.
TEST(LoginQueue, RandomArrivalsAreAdmittedInOrderWithinTheBound) {
    std::mt19937 random(29);
    const int slots = 16, cap = 3, bound = 4;
    const ActiveKey group = group_of("web");
    for (int round = 0; round < 200; ++round) {
        std::vector<LoginWaiter> waiters(slots, LoginWaiter{});
        std::vector<bool> holding(slots, false);
        std::vector<std::uint64_t> admitted_tickets;
        std::uint64_t tickets = 0;
        int in_use = 0;
        for (int step = 0; step < 300; ++step) {
            const int who = static_cast<int>(random() % slots);
            if (holding[who]) {  // it leaves
                holding[who] = false;
                --in_use;
            } else if (!waiters[who].waiting) {  // a new login in this slot
                const LoginTurn turn = login_turn(in_use < cap, false, false,
                                                  login_queue_length(waiters.data(), slots, group), bound, true);
                if (turn == LoginTurn::kAdmit) {
                    holding[who] = true;
                    ++in_use;
                } else if (turn == LoginTurn::kWait) {
                    waiters[who] = LoginWaiter{true, ++tickets, 0, group};
                }
            }
            // Every waiter looks (as woken); only the head may go in.
            for (int w = 0; w < slots; ++w) {
                if (!waiters[w].waiting) continue;
                const int head = login_queue_head(waiters.data(), slots, group);
                const LoginTurn turn = login_turn(in_use < cap, true, head == w,
                                                  login_queue_length(waiters.data(), slots, group), bound, true);
                if (turn != LoginTurn::kAdmit) continue;
                admitted_tickets.push_back(waiters[w].ticket);
                waiters[w].waiting = false;
                holding[w] = true;
                ++in_use;
            }
            ASSERT_LE(in_use, cap);
            ASSERT_LE(login_queue_length(waiters.data(), slots, group), bound);
        }
        for (std::size_t i = 1; i < admitted_tickets.size(); ++i) {
            ASSERT_LT(admitted_tickets[i - 1], admitted_tickets[i]) << "round " << round << ": FIFO";
        }
    }
}
