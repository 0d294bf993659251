# The background worker and the rules it loads: start, reload on commit, restart after
# SIGTERM, a database or table that disappears, pg_dump of the rules; what the library exports.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('guard');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
connguard.database = 'guard'
});
$node->start;

sub worker_pid {
    return $node->safe_psql('postgres',
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'");
}

# --- The worker runs even though connguard.database does not exist yet.
ok($node->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'"),
    'the pg_connguard worker is running');
$node->wait_for_log(qr/pg_connguard: no rules in force: database "guard" \(connguard.database\) does not exist/);
ok($node->log_contains(qr/FATAL:  database "guard" does not exist/), 'a missing rules database is logged with the reason');

$node->safe_psql('postgres', 'CREATE DATABASE guard');
$node->safe_psql('guard', 'CREATE EXTENSION pg_connguard');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_connguard');

# Rules written where the server does not read them are kept, with a warning.
my (undef, undef, $warning) = $node->psql('postgres', "INSERT INTO connguard.rules (rule_name) VALUES ('elsewhere')");
like($warning, qr/WARNING:  rules in database "postgres" are not enforced\nDETAIL:  pg_connguard reads its rules from database "guard" \(connguard.database\)/,
    'writing rules in another database warns where the rules are read from');
$node->safe_psql('postgres', 'DELETE FROM connguard.rules');

# --- A committed rule is enforced within one second, with no reload call.
my $elapsed = $node->safe_psql('guard', q{
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('fresh', 'etl', 10);
SELECT extract(epoch FROM clock_timestamp()) AS committed \gset
DO $$
DECLARE give_up timestamptz := clock_timestamp() + interval '10 s';
BEGIN
    WHILE NOT EXISTS (SELECT 1 FROM connguard.active_rules WHERE rule_name = 'fresh')
          AND clock_timestamp() < give_up LOOP
        PERFORM pg_sleep(0.005);
    END LOOP;
END $$;
SELECT extract(epoch FROM clock_timestamp()) - :committed;
});
cmp_ok($elapsed, '<', 1.0, "a committed rule appears in active_rules within 1 s (took ${elapsed}s)");
is($node->safe_psql('postgres', 'SELECT rule_name || max_connections FROM connguard.active_rules'),
    'fresh10', 'active_rules reads the same shared rule set from any database');

# An uncommitted change is not loaded; a rolled-back one never is.
$node->safe_psql('guard', q{
BEGIN;
UPDATE connguard.rules SET max_connections = 99;
ROLLBACK;
});
is($node->safe_psql('guard', 'SELECT connguard.reload_rules()'), '1', 'reload_rules() returns the rule count');
is($node->safe_psql('guard', 'SELECT max_connections FROM connguard.active_rules'), '10',
    'a rolled-back change is not enforced');

# --- A worker killed with SIGTERM comes back, and the rules stay in force meanwhile.
my $old_pid = worker_pid();
kill 'TERM', $old_pid;
ok($node->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker' AND pid <> $old_pid"),
    'the worker is restarted after SIGTERM');
is($node->safe_psql('guard', 'SELECT rule_name FROM connguard.active_rules'), 'fresh',
    'the rules survive a worker restart');
$node->safe_psql('guard', "UPDATE connguard.rules SET max_connections = 11");
ok($node->poll_query_until('guard', 'SELECT max_connections = 11 FROM connguard.active_rules'),
    'the restarted worker reloads on commit');

# --- A renamed table: the worker logs why, keeps the last good rules and stays.
my $pid = worker_pid();
my $version = $node->safe_psql('guard', 'SELECT rule_set_version FROM connguard.active_rules');
$node->safe_psql('guard', 'ALTER TABLE connguard.rules RENAME TO rules_away');
my ($ret, $stdout, $stderr) = $node->psql('guard', 'SELECT connguard.reload_rules()');
isnt($ret, 0, 'reload_rules() fails while the table is missing');
like($stderr, qr/could not load pg_connguard rules: relation "connguard.rules" does not exist/,
    'reload_rules() says why');
like($stderr, qr/The last good rules stay in force/, 'and that the last good rules stay');
ok($node->log_contains(qr/could not load rules from connguard.rules in database "guard": relation "connguard.rules" does not exist\n.*DETAIL:  Keeping the last good rules \(version $version, 1 rules\)/),
    'the server log says why and what stays in force');
is($node->safe_psql('guard', 'SELECT rule_name || max_connections || rule_set_version FROM connguard.active_rules'),
    "fresh11$version", 'the last good rules are still enforced');
is(worker_pid(), $pid, 'the worker is still running (same pid)');
is($node->safe_psql('guard', q{SELECT event || ': ' || detail FROM connguard.events ORDER BY event_time DESC LIMIT 1}),
    'rules_error: relation "connguard.rules" does not exist', 'connguard.events records the failed load');
$node->safe_psql('guard', 'ALTER TABLE connguard.rules_away RENAME TO rules');
is($node->safe_psql('guard', 'SELECT connguard.reload_rules()'), '1', 'rules load again once the table is back');
is($node->safe_psql('guard', q{SELECT event || ': ' || detail FROM connguard.events ORDER BY event_time DESC LIMIT 1}),
    'rules_loaded: 1 rules loaded from database "guard"', 'and connguard.events records the load');

# --- pg_dump dumps the rules (extension configuration table).
my ($dump, $dump_err) = run_command(['pg_dump', '-h', $node->host, '-p', $node->port, '-d', 'guard']);
like($dump, qr/COPY connguard\.rules .*\nfresh\t/s, 'pg_dump includes the rows of connguard.rules');

# --- The rules database is dropped: the worker holds no connection to it, so DROP
# DATABASE needs no FORCE; no rule is in force from then on (TAP 022 takes this further).
$node->safe_psql('postgres', 'DROP DATABASE guard');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM connguard.active_rules'),
   'after DROP DATABASE of connguard.database no rule is in force');
ok($node->log_contains(qr/no rules in force: database "guard" \(connguard.database\) does not exist/),
   'the log says why');
is($node->safe_psql('postgres', 'SELECT connguard.reload_rules()'), '0', 'reload_rules() finds no rule to load');
is(worker_pid(), $pid, 'the worker survives the dropped database');

# --- Recreated, it is picked up at the next change.
$node->safe_psql('postgres', 'CREATE DATABASE guard');
$node->safe_psql('guard', 'CREATE EXTENSION pg_connguard');
$node->safe_psql('guard', "INSERT INTO connguard.rules (rule_name) VALUES ('reborn')");
ok($node->poll_query_until('postgres', "SELECT string_agg(rule_name, ',') = 'reborn' FROM connguard.active_rules"),
    'rules from the recreated database replace the last good ones');

# --- The library exports only what PostgreSQL looks up by name (src/pg/exports.map):
# its C++ internals cannot clash with another library loaded into the server.
my ($exports) = run_command(['nm', '-D', '--defined-only', $node->config_data('--pkglibdir') . '/pg_connguard.so']);
my @exported = map { (split ' ')[2] } grep { /\S/ } split /\n/, $exports;
ok(scalar(grep { $_ eq 'connguard_worker_main' } @exported) && scalar(grep { $_ eq '_PG_init' } @exported),
    'the worker entry point and _PG_init are exported');
is(join(' ', grep { !/^(Pg_magic_func|_PG_init|connguard_\w+|pg_finfo_connguard_\w+)$/ } @exported), '',
    'nothing else is');

$node->stop;
done_testing();
