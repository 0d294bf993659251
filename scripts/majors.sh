# Where each supported PostgreSQL major comes from, and how to make it ready for a test run.
# Sourced by scripts/test.sh after scripts/common.sh.
#
#   target     server                                     built and tested in
#   15         Debian 12 packages (this machine)          this machine
#   17         Debian 13 "trixie" packages                a trixie root file system
#   18         Debian "sid" packages                      a sid root file system
#   19         Debian "experimental" packages             the same sid root file system
#   18-assert  18 from Debian's source package, built     this machine
#              --enable-cassert --enable-debug, no OpenSSL
#
# Root file systems and the assertion-enabled server are cached in $CONNGUARD_CACHE (default
# /var/cache/pg_connguard) and reused by later runs; --rebuild makes them anew. The archive
# they are made from is the one this machine's apt already uses.

ALL_TARGETS="15 17 18 19 18-assert"
# What this machine needs to make the root file systems, build the assertion-enabled server,
# and build the fuzzers (clang with its sanitizer and libFuzzer runtime).
MAJORS_HOST_PACKAGES="debootstrap bison flex clang libclang-rt-14-dev"
CONNGUARD_CACHE=${CONNGUARD_CACHE:-/var/cache/pg_connguard}
# Packages every root file system needs to build and test pg_connguard.
ROOTFS_PACKAGES="g++ make cmake libgtest-dev libipc-run-perl libkrb5-dev ca-certificates
                 prometheus prometheus-postgres-exporter pgbouncer"

suite_of_target() {
    case $1 in
        17) echo trixie ;;
        18 | 19) echo sid ;;
        *) return 1 ;;
    esac
}

# The Debian archive this machine's apt is configured with (the first one in its sources).
debian_archive() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { echo "cannot find the Debian archive in this machine's apt sources" >&2; return 1; }
    echo "$uri"
}

# With --rebuild (REBUILD_CACHE=1), a cached item is made anew once per run (CONNGUARD_RUN_ID).
needs_rebuild() {
    [ "${REBUILD_CACHE:-0}" = 1 ] && [ -d "$1" ] &&
        [ "$(cat "$1/.connguard-built" 2>/dev/null)" != "${CONNGUARD_RUN_ID:-}" ]
}
mark_built() { echo "${CONNGUARD_RUN_ID:-}" | as_root tee "$1/.connguard-built" >/dev/null; }

rootfs_dir() { echo "$CONNGUARD_CACHE/rootfs/$1"; }

# Runs a command inside a root file system, as root.
in_rootfs() {
    local dir=$1
    shift
    as_root chroot "$dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "$@"
}

mount_rootfs() {
    local dir=$1
    mountpoint -q "$dir/proc" || as_root mount -t proc proc "$dir/proc"
    mountpoint -q "$dir/dev/shm" || as_root mount -t tmpfs -o mode=1777,size=2g tmpfs "$dir/dev/shm"
}

# Lazily: a process still running inside (a server a failed test left) must not make the
# run fail at its very end.
unmount_rootfs() {
    local dir=$1
    mountpoint -q "$dir/dev/shm" && as_root umount -l "$dir/dev/shm"
    mountpoint -q "$dir/proc" && as_root umount -l "$dir/proc"
    return 0
}

unmount_all_rootfs() {
    local dir
    for dir in "$CONNGUARD_CACHE"/rootfs/*; do
        [ -d "$dir" ] && unmount_rootfs "$dir"
    done
    return 0
}

# Makes (or reuses) the root file system of a Debian suite with what the tests need, and the
# PostgreSQL major given. Prints nothing; fails with the apt or debootstrap output.
prepare_rootfs() {
    local suite=$1 major=$2 dir archive log
    dir=$(rootfs_dir "$suite")
    log="$CONNGUARD_CACHE/rootfs/$suite.log"
    if needs_rebuild "$dir"; then
        unmount_rootfs "$dir"
        as_root rm -rf --one-file-system "$dir"
    fi
    if [ ! -f "$dir/.connguard-built" ]; then
        archive=$(debian_archive)
        as_root mkdir -p "$CONNGUARD_CACHE/rootfs"
        as_root rm -rf --one-file-system "$dir"
        echo "   making a Debian $suite root file system in $dir (log: $log)" >&2
        if ! as_root debootstrap --variant=minbase "$suite" "$dir" "$archive" >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            return 1
        fi
        # No service starts inside it, and installing a server creates no cluster.
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$dir/usr/sbin/policy-rc.d" >/dev/null
        as_root chmod 755 "$dir/usr/sbin/policy-rc.d"
        as_root mkdir -p "$dir/etc/postgresql-common/createcluster.d"
        echo "create_main_cluster = false" | as_root tee "$dir/etc/postgresql-common/createcluster.d/no-main.conf" >/dev/null
        # The sid and experimental snapshots' Release files may be past their Valid-Until.
        echo 'Acquire::Check-Valid-Until "false";' | as_root tee "$dir/etc/apt/apt.conf.d/90connguard" >/dev/null
        if [ "$suite" = sid ]; then
            echo "deb $archive experimental main" | as_root tee "$dir/etc/apt/sources.list.d/experimental.list" >/dev/null
        fi
        mount_rootfs "$dir"
        if ! { in_rootfs "$dir" apt-get update -qq &&
               in_rootfs "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $ROOTFS_PACKAGES; } >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            return 1
        fi
        mark_built "$dir"
    fi
    mount_rootfs "$dir"
    # A file system cached before a package joined the list gets it now.
    local missing="" package
    for package in $ROOTFS_PACKAGES; do
        in_rootfs "$dir" dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        echo "   installing$missing in $dir" >&2
        if ! { in_rootfs "$dir" apt-get update -qq &&
               in_rootfs "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            return 1
        fi
    fi
    if [ ! -x "$dir/usr/lib/postgresql/$major/bin/pg_config" ]; then
        local release=()
        [ "$major" = 19 ] && release=(-t experimental)
        echo "   installing PostgreSQL $major in $dir" >&2
        if ! { in_rootfs "$dir" apt-get update -qq &&
               in_rootfs "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${release[@]}" \
                   "postgresql-$major" "postgresql-server-dev-$major"; } >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            return 1
        fi
    fi
}

# Builds (or reuses) PostgreSQL 18 from Debian's source package with assertions, debug
# information and no OpenSSL, installed in $CONNGUARD_CACHE/pg18-assert. The source package is
# fetched through the sid root file system's apt.
ASSERT_PREFIX="$CONNGUARD_CACHE/pg18-assert"
prepare_assert_server() {
    local sid src log
    log="$CONNGUARD_CACHE/pg18-assert.log"
    if needs_rebuild "$ASSERT_PREFIX"; then
        as_root rm -rf "$ASSERT_PREFIX"
    fi
    [ -f "$ASSERT_PREFIX/.connguard-built" ] && return 0
    sid=$(rootfs_dir sid)
    prepare_rootfs sid 18
    echo "   building PostgreSQL 18 with assertions in $ASSERT_PREFIX (log: $log)" >&2
    build_assert_server "$sid" >"$log" 2>&1 || { tail -n 30 "$log" >&2; return 1; }
    mark_built "$ASSERT_PREFIX"
}

build_assert_server() {
    local sid=$1 archive src tarball
    archive=$(debian_archive) || return 1
    echo "deb-src $archive sid main" | as_root tee "$sid/etc/apt/sources.list.d/sid-src.list" >/dev/null
    in_rootfs "$sid" apt-get update -qq || return 1
    as_root rm -rf "$sid/usr/src/pg18" && as_root mkdir -p "$sid/usr/src/pg18" || return 1
    in_rootfs "$sid" sh -c 'cd /usr/src/pg18 && apt-get source --download-only -qq postgresql-18' || return 1
    tarball=$(ls "$sid"/usr/src/pg18/postgresql-18_*.orig.tar.* | head -n 1)
    src=$(mktemp -d /var/tmp/pg18-source.XXXXXX)
    tar -C "$src" -xf "$tarball" || return 1
    (
        cd "$src"/postgresql-18* &&
            ./configure --prefix="$ASSERT_PREFIX" --enable-cassert --enable-debug --enable-tap-tests \
                --without-icu --without-readline --without-zlib --without-openssl &&
            make -j"$(nproc)" && as_root make install
    ) || return 1
    rm -rf "$src"
}
