#!/bin/sh
# Runs inside a clean Debian file system (scripts/packages.sh sets it up): a fresh server with
# only postgresql-MAJOR, then the three steps of the README's "Installing" (package, preload,
# extension and a rule) until a capped login is refused; then the package's own test
# (debian/tests/installcheck, pg_regress against the installed files) and a purge that must
# leave none of the package's files behind. Usage: package_check.sh MAJOR DEB [RELEASE]
# (RELEASE: the archive the server comes from when it is not the suite's own, e.g. experimental)
set -eu
major=$1 deb=$2 release=${3:-}
export DEBIAN_FRONTEND=noninteractive PGPORT=5499
step() { echo "### $*"; }
fail() { echo "FAILED: $*"; exit 1; }
# Whatever happens, the server does not outlive the check (its file system is thrown away).
trap 'pg_ctlcluster $major main stop -m immediate >/dev/null 2>&1 || true' EXIT

step "a fresh server: postgresql-$major and nothing else"
apt-get update -qq
server="postgresql-$major"
# From another archive, the server takes its client and libpq from there too.
[ -z "$release" ] || server="postgresql-$major/$release postgresql-client-$major/$release libpq5/$release"
apt-get install -y -qq --no-install-recommends $server >/dev/null
# This file system shares the machine's network: the cluster gets a port of its own.
sed -i "s/^port = .*/port = $PGPORT/" /etc/postgresql/$major/main/postgresql.conf
pg_ctlcluster $major main start

step "1. apt install ./$(basename "$deb")"
apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
step "2. preload the library and restart"
echo "shared_preload_libraries = 'pg_connguard'" >/etc/postgresql/$major/main/conf.d/pg_connguard.conf
pg_ctlcluster $major main restart
step "3. create the extension and a rule"
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 \
    -c "CREATE EXTENSION pg_connguard" \
    -c "INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('reports', 'report-job', 1)"

step "check: the rule is in force and a second report-job login is refused"
useradd --no-create-home reporter
runuser -u postgres -- psql -X -q -c "CREATE ROLE reporter LOGIN"
tries=0
until [ "$(runuser -u postgres -- psql -X -Atc "SELECT count(*) FROM connguard.active_rules WHERE rule_name = 'reports'")" = 1 ]; do
    tries=$((tries + 1)); [ $tries -lt 50 ] || fail "the rule was not loaded within 5 s"; sleep 0.1
done
runuser -u reporter -- env PGAPPNAME=report-job psql -X -d postgres -c "SELECT pg_sleep(5)" >/dev/null &
holder=$!
tries=0
until [ "$(runuser -u postgres -- psql -X -Atc "SELECT count(*) FROM connguard.sessions WHERE application_name = 'report-job'")" = 1 ]; do
    tries=$((tries + 1)); [ $tries -lt 50 ] || fail "the first report-job session did not start"; sleep 0.1
done
if refused=$(runuser -u reporter -- env PGAPPNAME=report-job psql -X -d postgres -c "SELECT 1" 2>&1); then
    fail "the second report-job login was admitted"
fi
echo "$refused"
echo "$refused" | grep -q 'too many connections for rule "reports"' || fail "not refused by pg_connguard"
wait $holder
runuser -u postgres -- psql -X -Atc "SELECT event, rule_name, application_name FROM connguard.events WHERE event = 'rejected'"

step "the package's test: pg_regress against the installed files"
(cd /var/tmp/connguard-check/source && sh debian/tests/installcheck)

step "purge: no file of the package is left, the server runs without it"
pg_ctlcluster $major main stop
dpkg -L postgresql-$major-connguard >/var/tmp/connguard-check/files
apt-get purge -y -qq postgresql-$major-connguard >/dev/null
left=$(while read -r f; do if [ -f "$f" ]; then echo "$f"; fi; done </var/tmp/connguard-check/files)
[ -z "$left" ] || fail "left behind: $left"
rm /etc/postgresql/$major/main/conf.d/pg_connguard.conf
pg_ctlcluster $major main start
[ "$(runuser -u postgres -- psql -X -Atc 'SELECT 1')" = 1 ] || fail "the server does not answer after the purge"
pg_ctlcluster $major main stop
echo "package check passed"
