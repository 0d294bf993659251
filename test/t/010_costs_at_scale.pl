# Costs that must not grow with abuse or scale: sessions renaming themselves as fast as they
# can (SET application_name in a loop) cost the worker at most one look every 10 ms, not one
# per rename, and renames into a full group are still refused; 5,000 "+group" rules cost a
# login a few catalog lookups for its own role's memberships, not one per rule.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('renames');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\nconnguard.max_rules = 5000\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('full', 'full', 1);
SELECT connguard.reload_rules();
});
my $worker = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'});
sub cpu_ticks { my @f = split ' ', slurp_file("/proc/$worker/stat"); return $f[13] + $f[14]; }

# Four sessions rename themselves 1,000,000 times each, among names with no cap.
my @spammers = map { login($node, user => 'app', database => 'postgres', application_name => "spam-$_") } 1 .. 4;
my $before = cpu_ticks();
my $started = time();
send_query($_, q{DO $$ BEGIN FOR i IN 1 .. 1000000 LOOP
                   PERFORM set_config('application_name', 'spam-' || (i % 7), false);
                 END LOOP; END $$}) for @spammers;
is(wait_result($_), undef, 'a session renames itself 1,000,000 times') for @spammers;
my $seconds = time() - $started;
my $ticks = cpu_ticks() - $before;
my $share = $ticks / 100 / $seconds;
cmp_ok($share, '<', 0.15, sprintf('the worker used %.1f %% of a core meanwhile (%d ticks in %.1f s)', 100 * $share, $ticks, $seconds));

# A rename into the full group is still refused at the SET.
my $holder = login($node, user => 'app', database => 'postgres', application_name => 'full');
is(simple_query($spammers[0], q{SET application_name = 'full'}), '53300: too many connections for rule "full"',
   'a rename into a full group is refused');
close $_->{socket} for @spammers, $holder;
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'});

# 5,000 rules, each naming a group of its own; the login role is a member of the last one.
$node->safe_psql('postgres', q{
DO $$ BEGIN FOR i IN 1 .. 5000 LOOP EXECUTE format('CREATE ROLE g%s', i); END LOOP; END $$;
GRANT g5000 TO app;
DELETE FROM connguard.rules;
INSERT INTO connguard.rules (rule_name, priority, role_name, max_connections)
SELECT 'group-' || i, i, '+g' || i, 1 FROM generate_series(1, 5000) AS i;
SELECT connguard.reload_rules();
SELECT connguard.reset_stats();
});
my @members = map { login($node, user => 'app', database => 'postgres') } 1 .. 2;
ok($members[0]{admitted} && !$members[1]{admitted}, 'a member of the 5,000th group gets its one place');
like($members[1]{detail}, qr/rule "group-5000"/, 'the second is refused under that rule');
my $check_ms = $node->safe_psql('postgres', q{SELECT login_check_avg_us / 1000 FROM connguard.server_status});
cmp_ok($check_ms, '<', 10, sprintf('a login check with 5,000 group rules takes %.2f ms of CPU', $check_ms));
close $members[0]{socket};

done_testing();
