#!/usr/bin/env bash
# The real-client compatibility suite: SQLAlchemy's QueuePool, psycopg 3 + psycopg_pool,
# Django, psycopg2's pool (Debian packages), node-postgres's pg.Pool (npm, or Debian's
# node-pg), pgjdbc + HikariCP (Debian packages, default URL), each against a temporary
# PostgreSQL 15 cluster of its own with pg_connguard preloaded, through five scenarios (idle
# reaping, a leaked transaction, a cap at login, max_active's queue and its 53000, a rule's
# transaction time and statement_timeout), with the README's recommended settings and
# with defaults. Prints the table of errors the application code saw and fails on any broken
# promise (test/clients/evaluate.py). As root or with sudo; run by scripts/test.sh.
#   test/clients/run.sh [client...]    clients: sqlalchemy psycopg_pool django psycopg2_pool node_pg hikari
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/common.sh"
CLIENT_PACKAGES="python3-sqlalchemy python3-psycopg python3-psycopg-pool python3-django python3-psycopg2
                 libpostgresql-jdbc-java libhikaricp-java default-jdk-headless"
install_missing_packages "$CLIENT_PACKAGES"
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(sqlalchemy psycopg_pool django psycopg2_pool node_pg hikari)
cache=${CONNGUARD_CACHE:-/var/cache/pg_connguard}/clients
logs="$root/build/test-logs"
mkdir -p "$logs"

# node-postgres: from npm when this machine has node and npm, else Debian's node-pg.
node_path=""
if [[ " ${clients[*]} " == *" node_pg "* ]]; then
    if command -v node >/dev/null && command -v npm >/dev/null; then
        if [ ! -d "$cache/node/node_modules/pg" ]; then
            as_root mkdir -p "$cache/node"
            as_root npm install --silent --no-audit --no-fund --prefix "$cache/node" pg@8.23.1 >/dev/null
        fi
        node_path="$cache/node/node_modules"
    else
        install_missing_packages "nodejs node-pg"
        node_path=/usr/share/nodejs
    fi
fi

# Each client gets a cluster of its own: what one leaves behind cannot help or hurt the next.
build_dir=$(build_and_install_copy "$root" clients)
# The clients run as the server user from the copy it owns: the checkout may be unreadable to it
# (a clone under /root).
cd "$build_dir"
results="$logs/clients.jsonl"
: >"$results"
port=5488
for client in "${clients[@]}"; do
    work=$(mktemp -d /tmp/pg_connguard-client.XXXXXX)
    as_root chown "$SERVER_USER" "$work"
    as_server_user "$PG_BIN/initdb" -D "$work/data" -U postgres --auth=trust >/dev/null
    cat <<CONF | as_server_user tee -a "$work/data/postgresql.conf" >/dev/null
shared_preload_libraries = 'pg_connguard'
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
max_connections = 50
CONF
    as_server_user "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
    as_server_user "$PG_BIN/psql" -X -q -h "$work" -p $port -U postgres -d postgres -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE TABLE ledger (note text);
GRANT ALL ON ledger TO app;
INSERT INTO connguard.rules (rule_name, application_name, idle_timeout, idle_in_transaction_timeout, max_connections, cap_per) VALUES
    ('$client-idle', '$client-idle', '1 s', NULL, NULL, 'rule'),
    ('$client-leak', '$client-leak', NULL, '1 s', NULL, 'rule'),
    ('$client-cap', '$client-cap', NULL, NULL, 3, 'rule'),
    ('jdbc-default-name', 'PostgreSQL JDBC Driver', NULL, NULL, 3, 'rule');
INSERT INTO connguard.rules (rule_name, application_name, max_active, active_wait) VALUES
    ('$client-active', '$client-active', 1, '10 s'),
    ('$client-qtimeout', '$client-qtimeout', 1, '0.3 s');
INSERT INTO connguard.rules (rule_name, application_name, max_transaction_time, action, statement_timeout) VALUES
    ('$client-txtime', '$client-txtime', '1 s', 'terminate', NULL),
    ('$client-txcancel', '$client-txcancel', '1 s', 'cancel', NULL),
    ('$client-stmt', '$client-stmt', NULL, 'terminate', '0.3 s');
SELECT connguard.reload_rules() \\g /dev/null
SQL
    echo "-- $client"
    status=0
    case $client in
        node_pg) as_server_user env NODE_PATH="$node_path" node "$build_dir/test/clients/node_pg.js" $port >>"$results" 2>"$work/client.err" || status=$? ;;
        hikari) as_server_user java -cp /usr/share/java/HikariCP.jar:/usr/share/java/postgresql.jar:/usr/share/java/slf4j-api.jar \
                    "$build_dir/test/clients/Hikari.java" $port >>"$results" 2>"$work/client.err" || status=$? ;;
        *) as_server_user /usr/bin/python3 "$build_dir/test/clients/python_clients.py" $port "$client" >>"$results" 2>"$work/client.err" || status=$? ;;
    esac
    [ "$status" -eq 0 ] || { echo "{\"client\": \"$client\", \"scenario\": \"all\", \"settings\": \"-\", \"harness_error\": \"exit $status\"}" >>"$results"; tail -n 20 "$work/client.err"; }
    as_server_user "$PG_BIN/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null
    cp "$work/server.log" "$logs/clients-$client.server.log"
    as_root rm -rf "$work"
done
as_root rm -rf "$build_dir"
/usr/bin/python3 "$root/test/clients/evaluate.py" <"$results" | tee "$logs/clients.log"
