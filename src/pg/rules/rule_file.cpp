#include "pg/rules/rule_file.h"

#include <cerrno>
#include <string>

#include "core/rule_text.h"
#include "pg/cpp_boundary.h"

extern "C" {
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
}

namespace connguard::pg {
namespace {

// The file: "<crc32c of the rest, 8 hex digits>\n" then the rule text.
constexpr std::size_t kChecksumLine = 9;
constexpr std::size_t kMaxFileBytes = 64 * 1024 * 1024;

pg_crc32c crc_of(const char* data, std::size_t size) {
    pg_crc32c crc;
    INIT_CRC32C(crc);
    COMP_CRC32C(crc, data, size);
    FIN_CRC32C(crc);
    return crc;
}

bool write_all(int fd, const char* at, std::size_t size) {
    while (size > 0) {
        const ssize_t written = write(fd, at, size);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return false;
        at += written;
        size -= static_cast<std::size_t>(written);
    }
    return true;
}

// Reads the whole file into palloc'd memory; false with errno set (EFBIG when too large).
bool read_whole(int fd, char** data, std::size_t* size) {
    struct stat st;
    if (fstat(fd, &st) != 0) return false;
    if (static_cast<std::size_t>(st.st_size) > kMaxFileBytes) {
        errno = EFBIG;
        return false;
    }
    *size = static_cast<std::size_t>(st.st_size);
    *data = static_cast<char*>(palloc(*size + 1));
    std::size_t got_total = 0;
    while (got_total < *size) {
        const ssize_t got = read(fd, *data + got_total, *size - got_total);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        got_total += static_cast<std::size_t>(got);
    }
    return true;
}

}  // namespace

bool save_rule_file(SharedState* state, std::uint64_t generation, const core::CompiledRule* rules, int count) {
    // Each writer its own temporary file: two loaders (the worker restarted while one ran)
    // never write into one another's.
    char temporary[MAXPGPATH];
    snprintf(temporary, sizeof temporary, "%s.tmp.%d", kRuleFileName, MyProcPid);
    char* text = nullptr;
    std::size_t text_size = 0;
    cpp_call([&] {
        const std::string encoded = core::encode_rule_set(rules, static_cast<std::size_t>(count));
        text_size = encoded.size();
        text = static_cast<char*>(MemoryContextAllocExtended(CurrentMemoryContext, text_size + 1, MCXT_ALLOC_NO_OOM));
        if (text != nullptr) memcpy(text, encoded.data(), text_size);
    });
    if (text == nullptr) {
        ereport(LOG, (errmsg("pg_connguard: out of memory writing \"%s\"", kRuleFileName)));
        return false;
    }
    char checksum[kChecksumLine + 1];
    snprintf(checksum, sizeof checksum, "%08x\n", static_cast<unsigned>(crc_of(text, text_size)));
    const int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
    bool ok = fd >= 0 && write_all(fd, checksum, kChecksumLine) && write_all(fd, text, text_size) && pg_fsync(fd) == 0;
    const int saved_errno = errno;
    if (fd >= 0 && close(fd) != 0) ok = false;
    pfree(text);
    if (!ok) {
        errno = saved_errno;
        ereport(LOG, (errcode_for_file_access(),
                      errmsg("pg_connguard: could not write \"%s\": %m; after a restart the caps apply from the "
                             "first rules load, not from the first login",
                             temporary)));
        unlink(temporary);
        return false;
    }
    // Only the newest rule set published may become the file: the check and the rename are
    // one step under the lock (a rename is a metadata change, not a write of the data).
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    const bool newest = state->published_generation == generation;
    const int renamed = newest ? rename(temporary, kRuleFileName) : 0;
    const int rename_errno = errno;
    LWLockRelease(state->lock);
    if (!newest) {
        unlink(temporary);
        return false;
    }
    if (renamed != 0) {
        errno = rename_errno;
        ereport(LOG, (errcode_for_file_access(), errmsg("pg_connguard: could not rename \"%s\" to \"%s\": %m",
                                                        temporary, kRuleFileName)));
        unlink(temporary);
        return false;
    }
    return fsync_fname_ext(kRuleFileName, false, false, LOG) == 0 && fsync_fname_ext(".", true, false, LOG) == 0;
}

int read_rule_file(core::CompiledRule* rules, int capacity, char* why, std::size_t why_size) {
    const int fd = open(kRuleFileName, O_RDONLY | PG_BINARY, 0);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        snprintf(why, why_size, "cannot open it: %s", strerror(errno));
        return -1;
    }
    char* data = nullptr;
    std::size_t size = 0;
    const bool read_ok = read_whole(fd, &data, &size);
    const int read_errno = errno;
    close(fd);
    if (!read_ok) {
        snprintf(why, why_size, "cannot read it: %s", strerror(read_errno));
        if (data != nullptr) pfree(data);
        return -1;
    }
    int result = -1;
    unsigned stored = 0;
    char newline = '\0';
    if (size < kChecksumLine || sscanf(data, "%8x%c", &stored, &newline) != 2 || newline != '\n') {
        snprintf(why, why_size, "it is not a rule file of this version of pg_connguard");
    } else if (stored != crc_of(data + kChecksumLine, size - kChecksumLine)) {
        snprintf(why, why_size, "its checksum does not match");
    } else {
        // The postmaster reads it: nothing here may raise an ERROR, a C++ failure included.
        try {
            const core::CompiledRuleSet set = core::decode_rule_set(
                std::string_view(data + kChecksumLine, size - kChecksumLine), static_cast<std::size_t>(capacity));
            if (set.error.empty()) {
                memcpy(static_cast<void*>(rules), set.rules.data(), sizeof(core::CompiledRule) * set.rules.size());
                result = static_cast<int>(set.rules.size());
            } else {
                copy_text(set.error, why, why_size);
            }
        } catch (...) {
            snprintf(why, why_size, "out of memory reading it");
        }
    }
    pfree(data);
    return result;
}

}  // namespace connguard::pg
