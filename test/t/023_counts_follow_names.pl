# Counts always follow names: after any sequence of renames (committed, rolled back, in a
# savepoint, SET LOCAL, RESET), reloads, rule changes and connguard.enabled off and on, each
# group counts exactly the sessions that hold its name now, as pg_stat_activity shows them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('follow');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections, cap_per) VALUES
    ('g', 10, 'g-*', 3, 'application'),
    ('h', 20, 'h-*', 4, 'rule');
SELECT connguard.reload_rules();
});

sub value { return $node->safe_psql('postgres', $_[0]); }

# Sessions whose group size (cap_used) differs from the number of sessions that hold a name of
# the same group in pg_stat_activity (per application for g, all h-* together for h).
my $mismatches = q{
    WITH named AS (SELECT pid, application_name,
                          CASE WHEN application_name LIKE 'h-%' THEN 'h' ELSE application_name END AS grp
                     FROM pg_stat_activity WHERE usename = 'app')
    SELECT count(*) FROM connguard.sessions s JOIN named n USING (pid)
     WHERE s.cap_used IS DISTINCT FROM (SELECT count(*) FROM named m WHERE m.grp = n.grp)};

my @names = (map({ "g-$_" } 0 .. 3), map({ "h-$_" } 0 .. 2));
my @sessions = map { admitted_login($node, application_name => $names[$_ % @names]) } 0 .. 9;
srand(23);
my ($checks, $bad, $switches, $renames, $refused) = (0, 0, 0, 0, 0);
my $enabled = 1;
my $started = time();
my $next_switch = $started + 0.3;
my $next_check = $started + 1;
while (time() - $started < 12) {
    my $session = $sessions[ int(rand(@sessions)) ];
    my $to = $names[ int(rand(@names)) ];
    my $then = $names[ int(rand(@names)) ];
    my @forms = ("BEGIN; SET application_name = '$to'; SAVEPOINT s; SET application_name = '$then'; "
                 . "ROLLBACK TO SAVEPOINT s; COMMIT",
                 "BEGIN; SET application_name = '$to'; SAVEPOINT s; SET application_name = '$then'; RELEASE s; COMMIT","BEGIN; SET application_name = '$to'; COMMIT", "BEGIN; SET application_name = '$to'; ROLLBACK",
                 "BEGIN; SAVEPOINT s; SET application_name = '$to'; ROLLBACK TO SAVEPOINT s; COMMIT",
                 "BEGIN; SAVEPOINT s; SET application_name = '$to'; RELEASE s; COMMIT",
                 "SET application_name = '$to'", 'RESET application_name',
                 "BEGIN; SELECT set_config('application_name', '$to', true); COMMIT");
    my $error = simple_query($session, $forms[ int(rand(@forms)) ]);
    ++$renames;
    if (defined $error) {
        die "unexpected: $error" unless $error =~ /^53300/;
        ++$refused;
        simple_query($session, 'ROLLBACK');
    }
    if (time() >= $next_switch) {
        my $what = int(rand(3));
        if ($what == 0) {
            $enabled = !$enabled;
            value(sprintf(q{ALTER SYSTEM SET connguard.enabled = %s; SELECT pg_reload_conf()}, $enabled ? 'on' : 'off'));
        } elsif ($what == 1) {
            value(sprintf(q{UPDATE connguard.rules SET max_connections = %d WHERE rule_name = 'g'}, 2 + int(rand(3))));
        } else {
            value(q{SELECT connguard.reload_rules()});
        }
        ++$switches;
        $next_switch = time() + 0.2 + rand(0.3);
    }
    if (time() >= $next_check) {
        # A quiet moment: no rename in flight, the worker has served every reload.
        $node->poll_query_until('postgres', q{SELECT NOT reload_pending FROM connguard.server_status});
        sleep 0.1;
        ++$checks;
        my $count = value($mismatches);
        ++$bad if $count ne '0';
        diag("check $checks: $count sessions counted in a group of another size") if $count ne '0';
        $next_check = time() + 1;
    }
}
value(q{ALTER SYSTEM RESET connguard.enabled; SELECT pg_reload_conf()});
$node->poll_query_until('postgres', q{SELECT NOT reload_pending FROM connguard.server_status});
sleep 0.1;
++$checks;
++$bad if value($mismatches) ne '0';
cmp_ok($renames, '>', 200, "$renames renames ($refused refused at the SET) and $switches reloads, rule changes or enabled switches");
is($bad, 0, "at $checks quiet moments every group counted exactly the sessions holding its name");
is(value(q{SELECT count(*) FROM connguard.events WHERE event = 'terminated'}), '0', 'nobody was ended');
close $_->{socket} for @sessions;
$node->stop;
done_testing();
