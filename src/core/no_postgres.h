// Included first by every core header: the core must never see a PostgreSQL header.
// PostgreSQL's error handling uses longjmp, which skips C++ destructors; keeping the
// core free of it is what lets the core use std::string, std::vector and exceptions.
#pragma once

#ifdef POSTGRES_H
#error "src/core must not include PostgreSQL headers (postgres.h was included before a core header)"
#endif
