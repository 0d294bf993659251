# connguard.capacity and the overcommitment finding of health(): the sum a DBA makes by hand
# ("API 4 x 25 + materializer 25 + simulator 25 + admin 10 = 160 of 197"), made by the server
# from its rules and the application names it sees, and what changes when one more rule
# makes the caps add up past the usable slots.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('capacity');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 200
superuser_reserved_connections = 3
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections, cap_per) VALUES
    ('api', 10, 'api-*', 25, 'application'),
    ('materializer', 20, 'materializer', 25, 'rule'),
    ('simulator', 30, 'simulator', 25, 'rule'),
    ('admin', 40, 'admin', 10, 'rule'),
    ('timeouts-only', 50, 'report*', NULL, 'rule');
});
$node->safe_psql('postgres', 'SELECT connguard.reload_rules()');

# Four API processes, each its own application name: the per-application cap counts four times.
my @held = map { admitted_login($node, application_name => "api-$_") } 1 .. 4;
push @held, admitted_login($node, application_name => 'api-1');

my $rows = q{SELECT string_agg(rule_name || ':' || coalesce(can_hold::text, '-') || ':' || coalesce(running_total::text, '-')
                               || CASE WHEN exhausting THEN ':exhausting' ELSE '' END, ' ' ORDER BY ord)
             FROM (SELECT *, row_number() OVER () AS ord FROM connguard.capacity) c};
is($node->safe_psql('postgres', $rows),
   'api:100:100 materializer:25:125 simulator:25:150 admin:10:160 (default):-:- timeouts-only:-:-',
   'capacity: api 4 x 25, then the others, largest first, with the running total; uncapped rows last');
is($node->safe_psql('postgres', q{SELECT DISTINCT usable_slots || ' ' || reserve || ' ' || overcommitted FROM connguard.capacity}),
   '197 37 false', '160 of 197 usable slots: 37 left for sessions under no cap, not overcommitted');
is($node->safe_psql('postgres', q{SELECT scopes_seen FROM connguard.capacity WHERE rule_name = 'api'}), '4',
   'the api rule has four application names in use');
unlike($node->safe_psql('postgres', 'SELECT message FROM connguard.health()'), qr/overcommitted/,
       'health() finds nothing to say about the caps');

# One more rule: 210 can be held at once, 197 slots are usable.
$node->safe_psql('postgres', q{INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections)
                               VALUES ('batch', 15, 'batch', 50)});
ok($node->poll_query_until('postgres', q{SELECT overcommitted FROM connguard.capacity LIMIT 1}),
   'with a batch rule of 50 the caps are overcommitted');
is($node->safe_psql('postgres', $rows),
   'api:100:100:exhausting batch:50:150:exhausting materializer:25:175:exhausting simulator:25:200:exhausting '
   . 'admin:10:210 (default):-:- timeouts-only:-:-',
   'the four largest rules together can hold every usable slot');
like($node->safe_psql('postgres', q{SELECT status || ': ' || message FROM connguard.health()}),
     qr/^ok: \d+ of 197 usable connection slots in use \([0-9.]+%\); caps overcommitted: the rules can hold 210 sessions at once, 197 slots are usable \(api 100, batch 50, materializer 25, simulator 25\)$/,
     'health() says so, and keeps its status for the utilization alone');

# The default per-application cap counts each application seen outside the rules.
$node->append_conf('postgresql.conf', "connguard.max_connections_per_application = 5\n");
$node->reload;
push @held, admitted_login($node, application_name => $_) for 'loose-a', 'loose-b';
ok($node->poll_query_until('postgres', q{SELECT can_hold = 10 FROM connguard.capacity WHERE rule_name = '(default)'}),
   'the default cap of 5 counts for the two applications seen outside the rules');

# pg_monitor reads it; others do not.
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM connguard.capacity', extra_params => ['-U', 'watcher']), 't',
   'a pg_monitor member reads connguard.capacity');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM connguard.capacity', extra_params => ['-U', 'app']);
like($err, qr/permission denied/, 'another role does not');

close $_->{socket} for @held;
$node->stop;
done_testing();
