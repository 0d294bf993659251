# Debian packages of pg_connguard, one per PostgreSQL major (postgresql-NN-connguard), built the
# way Debian builds extensions (debian/: pg_buildext, dh --with pgxs_loop) and checked like an
# autopkgtest: installed with apt into a clean Debian file system that has only the server, the
# three steps of the README's "Installing" taken there until a capped login is refused, the
# pg_regress suite run against the installed files (debian/tests/installcheck), and the package
# purged without leaving a file behind. Sourced by scripts/test.sh after scripts/majors.sh.

# What building a package needs, on this machine and in each root file system.
PACKAGE_BUILD_PACKAGES="build-essential debhelper postgresql-server-dev-all fakeroot lintian"
PACKAGE_VERSION=$(sed -n '1s/.*(\([^)]*\)).*/\1/p' "$root/debian/changelog")

# The Debian suite whose clean file system checks the package of a target.
package_suite_of_target() {
    case $1 in
        15) echo bookworm ;;
        *) suite_of_target "$1" ;;
    esac
}

# Builds postgresql-$target-connguard in the target's own system ($rootfs, "" for this machine)
# from a copy of the source, then runs lintian on it. Leaves the .deb in $root/build/packages
# and prints lintian's counts as "E errors, W warnings"; fails on a build or lintian error.
build_package() {
    local target=$1 log=$2 work="/var/tmp/pg_connguard-pkg-$target" src
    src="$work/pg-connguard-$PACKAGE_VERSION"
    if [ -n "$rootfs" ] && ! in_rootfs "$rootfs" sh -c "for p in $PACKAGE_BUILD_PACKAGES; do
            dpkg-query -W -f='\${Status}' \$p 2>/dev/null | grep -q 'install ok installed' || exit 1; done"; then
        in_rootfs "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            $PACKAGE_BUILD_PACKAGES >>"$log" 2>&1 || return 1
    fi
    as_root rm -rf "$rootfs$work" && as_root mkdir -p "$rootfs$src" || return 1
    (cd "$root" && git ls-files -co --exclude-standard 2>/dev/null || find . -type f -not -path './build/*' -not -path './.git/*') |
        grep -vE '^(\./)?build/' | tar -C "$root" -cf - -T - | as_root tar -C "$rootfs$src" -xf - || return 1
    as_target_root sh -c "cd '$src' && PG_SUPPORTED_VERSIONS=$target pg_buildext updatecontrol &&
        PG_SUPPORTED_VERSIONS=$target DEB_BUILD_OPTIONS='nocheck parallel=$(nproc)' dpkg-buildpackage -us -uc -b" >>"$log" 2>&1 || return 1
    local deb="$work/postgresql-$target-connguard_${PACKAGE_VERSION}_amd64.deb"
    [ -f "$rootfs$deb" ] || { echo "no $deb was built" >>"$log"; return 1; }
    mkdir -p "$root/build/packages"
    cp "$rootfs$deb" "$root/build/packages/"
    # lintian exits non-zero on an error tag (and on any failure of its own).
    local lintian_out lintian_status=0 errors warnings
    lintian_out=$(as_target_root lintian --allow-root --tag-display-limit 0 "$deb" 2>&1) || lintian_status=$?
    { echo "lintian (exit $lintian_status):"; echo "$lintian_out"; } >>"$log"
    errors=$(grep -c '^E: ' <<<"$lintian_out" || true)
    warnings=$(grep -c '^W: ' <<<"$lintian_out" || true)
    echo "$errors errors, $warnings warnings"
    [ "$lintian_status" -eq 0 ] && [ "$errors" -eq 0 ]
}

# A clean Debian file system of the suite (debootstrap minbase, nothing else), cached; each
# check runs in a throwaway overlay over it.
prepare_clean_base() {
    local suite=$1 dir archive log
    dir=$(rootfs_dir "$suite-clean")
    log="$CONNGUARD_CACHE/rootfs/$suite-clean.log"
    if needs_rebuild "$dir"; then as_root rm -rf --one-file-system "$dir"; fi
    [ -f "$dir/.connguard-built" ] && return 0
    archive=$(debian_archive)
    as_root mkdir -p "$CONNGUARD_CACHE/rootfs"
    as_root rm -rf --one-file-system "$dir"
    echo "   making a clean Debian $suite file system in $dir (log: $log)" >&2
    if ! as_root debootstrap --variant=minbase "$suite" "$dir" "$archive" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        return 1
    fi
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$dir/usr/sbin/policy-rc.d" >/dev/null
    as_root chmod 755 "$dir/usr/sbin/policy-rc.d"
    echo 'Acquire::Check-Valid-Until "false";' | as_root tee "$dir/etc/apt/apt.conf.d/90connguard" >/dev/null
    [ "$suite" = sid ] &&
        echo "deb $archive experimental main" | as_root tee "$dir/etc/apt/sources.list.d/experimental.list" >/dev/null
    # A server of this machine's own release gets its updates and security archives too, as
    # this machine does (the package depends on the server version it was built against).
    if [ "$suite" = "$(. /etc/os-release && echo "$VERSION_CODENAME")" ]; then
        [ -f /etc/apt/sources.list.d/debian.sources ] &&
            as_root cp /etc/apt/sources.list.d/debian.sources "$dir/etc/apt/sources.list.d/"
        [ -f /etc/apt/sources.list ] && as_root cp /etc/apt/sources.list "$dir/etc/apt/sources.list"
    fi
    mark_built "$dir"
}

# The overlay a check runs in; apt's downloads are kept across checks.
clean_overlay_up() {
    local suite=$1 scratch=$2 base
    base=$(rootfs_dir "$suite-clean")
    as_root mkdir -p "$scratch/upper" "$scratch/work" "$scratch/merged" "$CONNGUARD_CACHE/apt-archives/$suite/partial"
    as_root mount -t overlay overlay -o "lowerdir=$base,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/merged" &&
    as_root mount --bind "$CONNGUARD_CACHE/apt-archives/$suite" "$scratch/merged/var/cache/apt/archives" &&
    mount_rootfs "$scratch/merged"
}

clean_overlay_down() {
    local scratch=$1
    unmount_rootfs "$scratch/merged"
    mountpoint -q "$scratch/merged/var/cache/apt/archives" && as_root umount -l "$scratch/merged/var/cache/apt/archives"
    mountpoint -q "$scratch/merged" && as_root umount -l "$scratch/merged"
    as_root rm -rf --one-file-system "$scratch"
}

# After an interrupted run: every check's overlay.
unmount_all_scratch() {
    local scratch
    for scratch in "$CONNGUARD_CACHE"/scratch/*; do
        [ -d "$scratch" ] && clean_overlay_down "$scratch"
    done
    return 0
}

# The check of one target's package in a clean file system (see the top of this file).
check_package() {
    local target=$1 log=$2 suite scratch fs deb status=0
    suite=$(package_suite_of_target "$target")
    deb="postgresql-$target-connguard_${PACKAGE_VERSION}_amd64.deb"
    prepare_clean_base "$suite" || return 1
    scratch="$CONNGUARD_CACHE/scratch/package-$target"
    clean_overlay_down "$scratch" 2>/dev/null || true
    clean_overlay_up "$suite" "$scratch" || { clean_overlay_down "$scratch"; return 1; }
    fs="$scratch/merged"
    as_root mkdir -p "$fs/var/tmp/connguard-check/source"
    as_root cp "$root/build/packages/$deb" "$fs/var/tmp/connguard-check/"
    as_root cp "$root/scripts/package_check.sh" "$fs/var/tmp/connguard-check/"
    tar -C "$root" -cf - debian sql expected test/regress.conf Makefile | as_root tar -C "$fs/var/tmp/connguard-check/source" -xf -
    as_root chmod -R a+rX "$fs/var/tmp/connguard-check"  # apt reads the package as its own sandbox user
    local release=""
    [ "$target" = 19 ] && release=experimental
    in_rootfs "$fs" sh /var/tmp/connguard-check/package_check.sh "$target" "/var/tmp/connguard-check/$deb" "$release" >>"$log" 2>&1 || status=$?
    clean_overlay_down "$scratch"
    return "$status"
}
