#include "pg/rule_file.h"

#include <cerrno>

extern "C" {
#include <fcntl.h>
#include <unistd.h>

#include "port/pg_crc32c.h"
#include "storage/fd.h"
}

namespace connguard::pg {
namespace {

// Bump kFormat whenever core::CompiledRule changes in any way: a file of another format or
// rule size is not read (the rules loader replaces it within milliseconds of the start).
constexpr std::uint32_t kMagic = 0x4C524743;  // "CGRL"
constexpr std::uint32_t kFormat = 2;

struct Header {
    std::uint32_t magic;
    std::uint32_t format;
    std::uint32_t rule_bytes;
    std::int32_t count;
    pg_crc32c crc;  // of the rules that follow
};

pg_crc32c crc_of(const core::CompiledRule* rules, int count) {
    pg_crc32c crc;
    INIT_CRC32C(crc);
    COMP_CRC32C(crc, rules, sizeof(core::CompiledRule) * count);
    FIN_CRC32C(crc);
    return crc;
}

bool write_all(int fd, const void* data, std::size_t size) {
    const char* at = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t written = write(fd, at, size);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return false;
        at += written;
        size -= static_cast<std::size_t>(written);
    }
    return true;
}

bool read_all(int fd, void* data, std::size_t size) {
    char* at = static_cast<char*>(data);
    while (size > 0) {
        const ssize_t got = read(fd, at, size);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        at += got;
        size -= static_cast<std::size_t>(got);
    }
    return true;
}

}  // namespace

bool save_rule_file(const core::CompiledRule* rules, int count) {
    char temporary[MAXPGPATH];
    snprintf(temporary, sizeof temporary, "%s.tmp", kRuleFileName);
    const Header header{kMagic, kFormat, static_cast<std::uint32_t>(sizeof(core::CompiledRule)), count,
                        crc_of(rules, count)};
    const int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
    bool ok = fd >= 0 && write_all(fd, &header, sizeof header) &&
              write_all(fd, rules, sizeof(core::CompiledRule) * count) && pg_fsync(fd) == 0;
    const int saved_errno = errno;
    if (fd >= 0 && close(fd) != 0) ok = false;
    if (!ok) {
        errno = saved_errno;
        ereport(LOG, (errcode_for_file_access(),
                      errmsg("pg_connguard: could not write \"%s\": %m; after a restart the caps apply from the "
                             "first rules load, not from the first login",
                             temporary)));
        unlink(temporary);
        return false;
    }
    return durable_rename(temporary, kRuleFileName, LOG) == 0;
}

int read_rule_file(core::CompiledRule* rules, int capacity, char* why, std::size_t why_size) {
    const int fd = open(kRuleFileName, O_RDONLY | PG_BINARY, 0);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        snprintf(why, why_size, "cannot open it: %s", strerror(errno));
        return -1;
    }
    Header header;
    int result = -1;
    if (!read_all(fd, &header, sizeof header)) {
        snprintf(why, why_size, "it is shorter than its header");
    } else if (header.magic != kMagic || header.format != kFormat ||
               header.rule_bytes != sizeof(core::CompiledRule)) {
        snprintf(why, why_size, "it was written by another version of pg_connguard");
    } else if (header.count < 0 || header.count > capacity) {
        snprintf(why, why_size, "it holds %d rules, more than connguard.max_rules (%d)", header.count, capacity);
    } else if (!read_all(fd, rules, sizeof(core::CompiledRule) * header.count)) {
        snprintf(why, why_size, "it is shorter than the %d rules it announces", header.count);
    } else if (!EQ_CRC32C(crc_of(rules, header.count), header.crc)) {
        snprintf(why, why_size, "its checksum does not match");
    } else {
        result = header.count;
    }
    close(fd);
    return result;
}

}  // namespace connguard::pg
