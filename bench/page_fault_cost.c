/* What a first touch of a page costs on this machine, the cost that dominates a new
 * backend's start (every backend is a fresh fork of the postmaster): a write to a page
 * the parent wrote before the fork (copy on write), a write to a fresh anonymous page,
 * and a first read from shared memory the parent filled (how a backend first reads
 * PostgreSQL's and pg_connguard's shared memory; the kernel then maps up to 16 pages
 * around the one read, so one read per 64 KB is timed). Prints the three averages in
 * microseconds. Used by bench/run.sh for context. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kPages = 4000 };

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double touch_each(char* base, long page) {
    const double start = seconds_now();
    for (long i = 0; i < kPages; ++i) base[i * page] = 2;
    return (seconds_now() - start) / kPages * 1e6;
}

static double read_each(const volatile char* base, long stride, long count) {
    const double start = seconds_now();
    int sum = 0;
    for (long i = 0; i < count; ++i) sum += base[i * stride];
    (void)sum;
    return (seconds_now() - start) / count * 1e6;
}

int main(void) {
    const long page = sysconf(_SC_PAGESIZE);
    char* inherited = mmap(NULL, kPages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (inherited == MAP_FAILED) return 1;
    memset(inherited, 1, kPages * page);
    const long stretch = 65536;
    const long stretches = kPages * page / stretch;
    char* shared = mmap(NULL, kPages * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return 1;
    memset(shared, 1, kPages * page);
    const pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        const double cow = touch_each(inherited, page);
        char* fresh = mmap(NULL, kPages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (fresh == MAP_FAILED) _exit(1);
        const double fresh_write = touch_each(fresh, page);
        printf("%.2f %.2f %.2f\n", cow, fresh_write, read_each(shared, stretch, stretches));
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
