// Utilization and health status.
#include <gtest/gtest.h>

#include "core/pool_health.h"

using namespace connguard::core;

TEST(PoolHealth, Utilization) {
    EXPECT_DOUBLE_EQ(utilization_pct(50, 200), 25.0);
    EXPECT_DOUBLE_EQ(utilization_pct(0, 97), 0.0);
    EXPECT_DOUBLE_EQ(utilization_pct(3, 0), 0.0) << "no usable slots: no division by zero";
}

TEST(PoolHealth, ThresholdsAreInclusive) {
    EXPECT_EQ(classify_health(69.9, 70, 85), Health::kOk);
    EXPECT_EQ(classify_health(70.0, 70, 85), Health::kWarning);
    EXPECT_EQ(classify_health(84.9, 70, 85), Health::kWarning);
    EXPECT_EQ(classify_health(85.0, 70, 85), Health::kCritical);
    EXPECT_EQ(classify_health(120.0, 70, 85), Health::kCritical);
}

TEST(PoolHealth, CriticalBelowWarnStillCritical) {
    EXPECT_EQ(classify_health(60.0, 70, 50), Health::kCritical);
}

TEST(PoolHealth, NamesAndMessage) {
    EXPECT_STREQ(health_name(Health::kWarning), "warning");
    EXPECT_EQ(health_message(12, 97, utilization_pct(12, 97)), "12 of 97 usable connection slots in use (12.4%)");
}
