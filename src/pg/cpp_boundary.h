// The C/C++ line. PostgreSQL reports errors with longjmp, which skips C++ destructors,
// and a C++ exception must never unwind through PostgreSQL frames. Every entry from
// PostgreSQL into C++ code that can throw goes through cpp_call:
//   - the C++ work runs inside fn, where exceptions may be thrown and objects destroyed;
//   - an exception is caught, its text copied to a plain buffer, and the ERROR raised only
//     after the catch block has ended, so no C++ object is alive when longjmp happens.
// fn itself must not call anything that can ereport.
#pragma once

#include <exception>
#include <new>

#include "pg/postgres_includes.h"

namespace connguard::pg {

template <typename Fn>
auto cpp_call(Fn&& fn) -> decltype(fn()) {
    char message[256];
    int sqlstate = ERRCODE_INTERNAL_ERROR;
    try {
        return fn();
    } catch (const std::bad_alloc&) {
        strlcpy(message, "out of memory", sizeof message);
        sqlstate = ERRCODE_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        strlcpy(message, e.what(), sizeof message);
    } catch (...) {
        strlcpy(message, "unknown C++ exception", sizeof message);
    }
    ereport(ERROR, (errcode(sqlstate), errmsg("pg_connguard: %s", message)));
}

// Copies a C++ string into a fixed buffer (truncating), for carrying text across the line.
inline void copy_text(const std::string& text, char* buffer, std::size_t size) noexcept {
    strlcpy(buffer, text.c_str(), size);
}

}  // namespace connguard::pg
