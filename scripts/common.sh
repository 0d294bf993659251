# Shared by scripts/test.sh and scripts/demo.sh: privileges, dependencies, and a copy of
# the source tree that the unprivileged server user can build and run tests in
# (initdb and postgres refuse to run as root).

PG_MAJOR=${PG_MAJOR:-15}
PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libkrb5-dev libipc-run-perl libgtest-dev
          libbenchmark-dev cmake g++ make"
# For the observability tests: promtool (prometheus) and the exporter the queries file is for;
# for the pooler test: PgBouncer.
TEST_PACKAGES="prometheus prometheus-postgres-exporter pgbouncer"

if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
    SERVER_USER=postgres
    as_server_user() { runuser -u "$SERVER_USER" -- "$@"; }
else
    as_root() { sudo "$@"; }
    SERVER_USER=$(id -un)
    as_server_user() { "$@"; }
fi

install_missing_packages() {
    local missing=""
    for package in $PACKAGES ${1:-}; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        echo "== installing:$missing"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
    fi
    PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
    PG_BIN=$($PG_CONFIG --bindir)
}

# Copies the source tree (without build output) to a fresh directory owned by the
# server user, builds the extension there and installs it. Prints the directory.
build_and_install_copy() {
    local source_dir=$1 copy
    copy=$(mktemp -d "/tmp/pg_connguard-$2.XXXXXX")
    tar -C "$source_dir" --exclude=./build --exclude=./tmp_check --exclude=./results --exclude=./.git \
        --exclude='*.o' --exclude='*.so' -cf - . | tar -C "$copy" -xf -
    make -s -C "$copy" PG_CONFIG="$PG_CONFIG" -j"$(nproc)" >&2
    as_root make -s -C "$copy" PG_CONFIG="$PG_CONFIG" install >&2
    as_root chown -R "$SERVER_USER" "$copy"
    echo "$copy"
}
