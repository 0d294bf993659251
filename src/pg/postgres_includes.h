// The one way shell files include PostgreSQL: standard C++ headers first (port.h
// redefines printf, snprintf and strerror), then the server headers with C linkage.
// Add a file's own server headers in an extern "C" block after including this one.
#pragma once

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/classifier.h"
#include "core/rule_compiler.h"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
}

#include "pg/compat.h"
