// Health of the server's connection pool: how full the usable connection slots are, and
// the status a load balancer or monitor acts on.
#pragma once
#include "no_postgres.h"

#include <cstdint>
#include <string>

namespace connguard::core {

enum class Health : std::uint8_t { kOk, kWarning, kCritical };

const char* health_name(Health health) noexcept;

// Percent of usable slots in use (0 when there are none usable).
double utilization_pct(std::int32_t client_sessions, std::int32_t usable_slots) noexcept;

// ok below warn_pct, warning from warn_pct, critical from critical_pct.
Health classify_health(double utilization, std::int32_t warn_pct, std::int32_t critical_pct) noexcept;

// "12 of 97 usable connection slots in use (12.4%)".
std::string health_message(std::int32_t client_sessions, std::int32_t usable_slots, double utilization);

}  // namespace connguard::core
