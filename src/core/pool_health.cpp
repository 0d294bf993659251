#include "pool_health.h"

#include <cstdio>

namespace connguard::core {

const char* health_name(Health health) noexcept {
    switch (health) {
        case Health::kOk: return "ok";
        case Health::kWarning: return "warning";
        case Health::kCritical: return "critical";
    }
    return "ok";
}

double utilization_pct(std::int32_t client_sessions, std::int32_t usable_slots) noexcept {
    if (usable_slots <= 0) return 0.0;
    return 100.0 * client_sessions / usable_slots;
}

Health classify_health(double utilization, std::int32_t warn_pct, std::int32_t critical_pct) noexcept {
    if (utilization >= critical_pct) return Health::kCritical;
    if (utilization >= warn_pct) return Health::kWarning;
    return Health::kOk;
}

std::string health_message(std::int32_t client_sessions, std::int32_t usable_slots, double utilization) {
    char text[128];
    std::snprintf(text, sizeof text, "%d of %d usable connection slots in use (%.1f%%)", client_sessions, usable_slots,
                  utilization);
    return text;
}

}  // namespace connguard::core
