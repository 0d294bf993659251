#!/bin/sh
# Rules survive pg_upgrade: a cluster of the OLD major with pg_connguard, rules and a refused
# login is upgraded with the NEW major's pg_upgrade (both majors and both builds of the library
# installed, as on a server being upgraded); afterwards the rules are in force and enforced,
# the extension is at the same version, and its events start anew. Run as the server user
# (scripts/test.sh runs it in the sid root file system: 18 -> 19).
# Usage: pg_upgrade_test.sh OLD NEW
set -eu
old=$1 new=$2
oldbin=/usr/lib/postgresql/$old/bin newbin=/usr/lib/postgresql/$new/bin
work=$(mktemp -d /var/tmp/pg_connguard-upgrade.XXXXXX)
export PGHOST=$work PGPORT=5497 PGUSER=postgres PGDATABASE=postgres
fail() { echo "FAILED: $*"; [ -f "$work/server.log" ] && tail -n 30 "$work/server.log"; exit 1; }
# Whatever happens, no server of this test outlives it.
cleanup() {
    for data in "$work/old" "$work/new"; do
        [ -f "$data/postmaster.pid" ] && "$newbin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1
    done
    rm -rf "$work"
}
trap cleanup EXIT
step() { echo "### $*"; }
q() { psql -X -Atq -v ON_ERROR_STOP=1 -c "$1"; }

make_cluster() {  # bindir datadir
    "$1/initdb" -D "$2" -U postgres --auth=trust >/dev/null
    cat >>"$2/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$work'
port = $PGPORT
shared_preload_libraries = 'pg_connguard'
CONF
}

wait_for() {  # query, expected value, what
    tries=0
    until [ "$(q "$1")" = "$2" ]; do
        tries=$((tries + 1)); [ $tries -lt 100 ] || fail "$3 (waited 10 s)"; sleep 0.1
    done
}

# One report-job session held, a second one must be refused by pg_connguard.
second_login_refused() {
    psql -X -U reporter -c "SELECT pg_sleep(3)" "application_name=report-job" >/dev/null &
    holder=$!
    wait_for "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'report-job'" 1 "the first session did not start"
    if out=$(psql -X -U reporter -c "SELECT 1" "application_name=report-job" 2>&1); then
        fail "a second report-job session was admitted on $1"
    fi
    echo "$out" | grep -q 'too many connections for rule "reports"' || fail "not refused by pg_connguard: $out"
    wait $holder
}

step "PostgreSQL $old: the extension, two rules, a refused login"
make_cluster "$oldbin" "$work/old"
"$oldbin/pg_ctl" -D "$work/old" -l "$work/server.log" -w start >/dev/null
q "CREATE EXTENSION pg_connguard"
q "CREATE ROLE reporter LOGIN"
q "INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections) VALUES ('reports', 10, 'report-job', 1)"
q "INSERT INTO connguard.rules (rule_name, role_name, idle_in_transaction_timeout, mode) VALUES ('leaks', 'reporter', '5 min', 'monitor')"
wait_for "SELECT count(*) FROM connguard.active_rules" 2 "the rules were not loaded"
second_login_refused "$old"
rules_before=$(q "SELECT string_agg(format('%s|%s|%s|%s|%s|%s', rule_name, priority, application_name, max_connections, idle_in_transaction_timeout, mode), ',' ORDER BY rule_name) FROM connguard.rules")
"$oldbin/pg_ctl" -D "$work/old" -w stop >/dev/null

step "pg_upgrade $old -> $new"
make_cluster "$newbin" "$work/new"
(cd "$work" && "$newbin/pg_upgrade" -b "$oldbin" -B "$newbin" -d "$work/old" -D "$work/new" \
    -p $PGPORT -P $PGPORT -s "$work" --retain >"$work/pg_upgrade.log" 2>&1) || { tail -n 40 "$work/pg_upgrade.log"; fail "pg_upgrade"; }
# In binary-upgrade mode the library stays out of the way (no worker connecting to databases
# pg_upgrade is restoring, no rule file written), as PostgreSQL's own launchers do.
upgrade_logs=$(find "$work/new" -name 'pg_upgrade_server*.log')
[ -n "$upgrade_logs" ] || fail "pg_upgrade kept no server log"
if grep -hE 'pg_connguard (worker|rules loader)|pg_connguard:' $upgrade_logs; then fail "pg_connguard was active during pg_upgrade"; fi
echo "pg_upgrade's servers ran without pg_connguard's worker"

step "PostgreSQL $new: the same rules in force and enforced"
: >"$work/server.log"
"$newbin/pg_ctl" -D "$work/new" -l "$work/server.log" -w start >/dev/null
[ "$(q "SHOW server_version_num" | cut -c1-2)" = "$new" ] || fail "not the new server"
[ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_connguard'")" = "$(q "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_connguard'")" ] ||
    fail "the extension is not at the library's version"
[ "$(q "SELECT string_agg(format('%s|%s|%s|%s|%s|%s', rule_name, priority, application_name, max_connections, idle_in_transaction_timeout, mode), ',' ORDER BY rule_name) FROM connguard.rules")" = "$rules_before" ] ||
    fail "the rules table changed"
wait_for "SELECT count(*) FROM connguard.active_rules" 2 "the rules are not in force after the upgrade"
second_login_refused "$new"
[ "$(q "SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND rule_name = 'reports'")" = 1 ] ||
    fail "the refusal was not recorded"
q "ALTER EXTENSION pg_connguard UPDATE"
"$newbin/pg_ctl" -D "$work/new" -w stop >/dev/null
echo "pg_upgrade check passed"
