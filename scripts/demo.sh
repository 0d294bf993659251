#!/usr/bin/env bash
# Sets up everything and runs the pg_connguard demo: installs what is missing, builds
# and installs the extension, starts a local demo cluster with the library preloaded,
# writes sample rules and shows what the server enforces. The cluster keeps running
# afterwards so you can explore it; the last lines say how to connect and stop it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/common.sh"
# Every path below is absolute; the server's user (postgres) runs psql from a directory it can
# read, not from a checkout under /root.
cd /tmp

DEMO_DIR=${DEMO_DIR:-/tmp/pg_connguard-demo}
DEMO_PORT=${DEMO_PORT:-54329}

install_missing_packages
echo "== building and installing pg_connguard"
copy=$(build_and_install_copy "$root" demo-build)
rm -rf "$copy"

if [ -f "$DEMO_DIR/data/postmaster.pid" ]; then
    as_server_user "$PG_BIN/pg_ctl" -D "$DEMO_DIR/data" -m fast stop >/dev/null || true
fi
as_root rm -rf "$DEMO_DIR"
as_root mkdir -p "$DEMO_DIR"
as_root chown "$SERVER_USER" "$DEMO_DIR"

echo "== starting a demo cluster in $DEMO_DIR on port $DEMO_PORT"
as_server_user "$PG_BIN/initdb" -D "$DEMO_DIR/data" -A trust -U postgres >/dev/null
as_server_user tee -a "$DEMO_DIR/data/postgresql.conf" >/dev/null <<CONF
port = $DEMO_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO_DIR'
shared_preload_libraries = 'pg_connguard'
CONF
as_server_user "$PG_BIN/pg_ctl" -D "$DEMO_DIR/data" -l "$DEMO_DIR/server.log" -w start >/dev/null

psql_demo() { as_server_user "$PG_BIN/psql" -X -h "$DEMO_DIR" -p "$DEMO_PORT" -U postgres -d postgres "$@"; }
show() { echo; echo "postgres=# $1"; psql_demo -c "$1"; }

show "SELECT pid, backend_type FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'"
show "CREATE EXTENSION pg_connguard"
psql_demo -qc "CREATE ROLE demo_app LOGIN"
show "INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections, cap_per, comment)
VALUES ('etl-cap', 10, 'etl-*', 2, 'application', 'each ETL job gets 2 connections'),
       ('web-pool', 20, 'web', 20, 'rule', 'the web pool as a whole')"
show "INSERT INTO connguard.rules (rule_name, role_name, idle_in_transaction_timeout, mode)
VALUES ('ops-exempt', '+ops', NULL, 'exempt'),
       ('leaky-app', NULL, '30 seconds', 'enforce')"
show "UPDATE connguard.rules SET application_name = 'leaky-*', idle_in_transaction_timeout = '2 seconds'
WHERE rule_name = 'leaky-app'"
echo
echo "-- A bad rule is refused with a clear error, and nothing is lost:"
show "INSERT INTO connguard.rules (rule_name, client_addr, cap_per) VALUES ('typo', '10.0.0.0/8', 'per-app')" || true
echo
echo "-- The committed rules are in force within a second, without a reload:"
sleep 1
show "SELECT rule_name, priority, role_name, application_name, max_connections, cap_per,
       idle_in_transaction_timeout, mode, rule_set_version FROM connguard.active_rules"
echo
echo "-- Admission control: 'etl-cap' allows 2 connections per ETL application."
echo "-- Two etl-nightly sessions hold their places (each sleeping 5 s)..."
for i in 1 2; do
    as_server_user env PGAPPNAME=etl-nightly "$PG_BIN/psql" -X -h "$DEMO_DIR" -p "$DEMO_PORT" -U demo_app -d postgres \
        -qc "SELECT pg_sleep(5)" >/dev/null &
done
until [ "$(psql_demo -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'etl-nightly'")" = 2 ]; do
    sleep 0.1
done
echo "-- ...so a third etl-nightly login is refused (SQLSTATE 53300):"
echo "\$ PGAPPNAME=etl-nightly psql -U demo_app -c 'SELECT 1'"
as_server_user env PGAPPNAME=etl-nightly PGOPTIONS="" "$PG_BIN/psql" -X -h "$DEMO_DIR" -p "$DEMO_PORT" -U demo_app \
    -d postgres -c "SELECT 1" 2>&1 | sed 's/^/  /' || true
echo "-- while another application still gets in:"
as_server_user env PGAPPNAME=etl-weekly "$PG_BIN/psql" -X -h "$DEMO_DIR" -p "$DEMO_PORT" -U demo_app -d postgres \
    -Atc "SELECT 'etl-weekly admitted as ' || current_user" | sed 's/^/  /'
wait

echo
echo "-- Idle enforcement: 'leaky-app' ends a leaky-* session left idle in a transaction for 2 s."
echo "-- A leaky-worker session opens a transaction, inserts a row, and forgets about it for 4 s:"
psql_demo -qc "CREATE TABLE demo_orders (id int); GRANT ALL ON demo_orders TO demo_app"
{ printf "BEGIN;\nINSERT INTO demo_orders VALUES (1);\n"; sleep 4; printf "SELECT 'still here';\n"; } |
    as_server_user env PGAPPNAME=leaky-worker "$PG_BIN/psql" -X -h "$DEMO_DIR" -p "$DEMO_PORT" -U demo_app \
        -d postgres 2>&1 | sed 's/^/  /' || true
echo "-- Its open transaction was rolled back:"
show "SELECT count(*) AS orders FROM demo_orders"

echo
echo "-- Watching the pool. Two long-running etl-nightly sessions and an idle web session are connected:"
for app in etl-nightly etl-nightly web; do
    as_server_user env PGAPPNAME=$app "$PG_BIN/psql" -X -h "$DEMO_DIR" -p "$DEMO_PORT" -U demo_app -d postgres \
        -qc "SELECT pg_sleep(3)" >/dev/null &
done
until [ "$(psql_demo -Atc "SELECT count(*) FROM connguard.sessions WHERE usename = 'demo_app'")" = 3 ]; do sleep 0.1; done
show "SELECT pid, application_name, state, rule_name, mode, limit_reason, cap, cap_used FROM connguard.sessions WHERE usename = 'demo_app'"
show "SELECT datname, usename, application_name, total, active, idle, idle_in_transaction, rule_name, cap, cap_used_pct
FROM connguard.pool_stats ORDER BY usename, application_name"
show "SELECT rule_name, sessions, cap, peak, admitted, rejected, terminated_idle_in_transaction FROM connguard.rule_stats"
show "SELECT event_time::time(0), event, application_name, rule_name, reason, detail FROM connguard.events"
show "SELECT max_connections, usable_slots, client_sessions, utilization_pct::numeric(5,1), status, rules_loaded
FROM connguard.server_status"
show "SELECT * FROM connguard.health()"
wait

echo
echo "-- The worker's own log lines:"
grep -E "pg_connguard|too many connections|DETAIL:  rule|terminating connection" "$DEMO_DIR/server.log" | sed 's/^/  /'

cat <<TXT

The demo cluster keeps running.
  connect:  $( [ "$(id -u)" -eq 0 ] && echo "runuser -u postgres -- " )$PG_BIN/psql -h $DEMO_DIR -p $DEMO_PORT -U postgres
  stop:     $( [ "$(id -u)" -eq 0 ] && echo "runuser -u postgres -- " )$PG_BIN/pg_ctl -D $DEMO_DIR/data stop
Try it: connguard.close_sessions() lists idle sessions (add dry_run => false to end them).
TXT
