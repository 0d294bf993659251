# Settings: bad values on reload are refused and the old value stays; restart-only
# settings do not change on reload; sessions cannot change the limits; max_rules.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('settings');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
connguard.max_rules = 2
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_connguard');

is($node->safe_psql('postgres', 'SHOW connguard.warn_utilization'), '70', 'default warn_utilization');
is($node->safe_psql('postgres', 'SHOW connguard.history_interval'), '10s', 'default history_interval');

# A bad value on reload is refused with PostgreSQL's message; the old value stays,
# and the good values of the same reload are applied.
$node->append_conf('postgresql.conf', qq{
connguard.warn_utilization = 500
connguard.exempt_roles = '"unterminated'
connguard.idle_timeout = '5s'
connguard.max_rules = 10
});
$node->reload;
$node->wait_for_log(qr/500 is outside the valid range for parameter "connguard.warn_utilization" \(1 \.\. 100\)/);
ok($node->log_contains(qr/invalid value for parameter "connguard.exempt_roles"/),
    'a malformed exempt_roles list is refused');
ok($node->log_contains(qr/parameter "connguard.max_rules" cannot be changed without restarting the server/),
    'a restart-only setting is not changed by a reload');
is($node->safe_psql('postgres', 'SHOW connguard.warn_utilization'), '70', 'the old warn_utilization stays');
is($node->safe_psql('postgres', 'SHOW connguard.exempt_roles'), '', 'the old exempt_roles stays');
is($node->safe_psql('postgres', 'SHOW connguard.max_rules'), '2', 'max_rules stays until restart');
is($node->safe_psql('postgres', 'SHOW connguard.idle_timeout'), '5s', 'a good value in the same reload is applied');

# A session cannot change the limits, whoever it is.
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'SET connguard.idle_timeout = 0', extra_params => ['-U', 'plain']);
like($stderr, qr/parameter "connguard.idle_timeout" cannot be changed now/, 'a plain role cannot SET the idle limit');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SET connguard.enabled = off');
like($stderr, qr/parameter "connguard.enabled" cannot be changed now/, 'nor can a superuser session switch it off');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SET connguard.no_such_setting = 1');
like($stderr, qr/invalid configuration parameter name "connguard.no_such_setting"/,
    'the connguard. prefix is reserved');

# More enabled rules than connguard.max_rules: the set is refused, the last good stays.
$node->safe_psql('postgres', "INSERT INTO connguard.rules (rule_name) VALUES ('a'), ('b')");
is($node->safe_psql('postgres', 'SELECT connguard.reload_rules()'), '2', 'two rules fit');
$node->safe_psql('postgres', "INSERT INTO connguard.rules (rule_name) VALUES ('c')");
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT connguard.reload_rules()');
like($stderr, qr/3 enabled rules exceed connguard.max_rules = 2/, 'a third enabled rule does not fit');
is($node->safe_psql('postgres', "SELECT string_agg(rule_name, ',') FROM connguard.active_rules"), 'a,b',
    'the last good rules stay');
$node->safe_psql('postgres', "UPDATE connguard.rules SET enabled = false WHERE rule_name = 'a'");
is($node->safe_psql('postgres', 'SELECT connguard.reload_rules()'), '2', 'disabled rules do not count');
is($node->safe_psql('postgres', "SELECT string_agg(rule_name, ',') FROM connguard.active_rules"), 'b,c',
    'the new set is in force');

$node->stop;
done_testing();
