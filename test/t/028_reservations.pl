# Reserved connections (issue 29, min_connections): while a rule's reserved places are unused,
# other logins are refused (53300, naming the reservation) before they would take them; the
# rule's own logins get in; exempt logins (superusers) are never refused; a rule set that
# reserves more than the usable slots is refused as a whole and the last good set stays; a dry
# run only counts what it would refuse.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('reservations');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 20
superuser_reserved_connections = 3
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections, min_connections)
    VALUES ('critical', 'critical-*', 5, 3);
INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per) VALUES ('others', 'other-*', 50, 'application');
SELECT connguard.reload_rules();
});
my $usable = $node->safe_psql('postgres', 'SELECT usable_slots FROM connguard.server_status');
is($usable, '17', 'the server has 17 usable slots (20 less 3 for superusers)');
like($node->safe_psql('postgres', 'SELECT message FROM connguard.health()'),
     qr/; 3 of 17 usable slots reserved \(min_connections: critical 3\)$/, 'health() names the reservation');

# Other applications fill the server up to the reservation.
my @others;
my $refused;
for my $i (1 .. 20) {
    my $session = login($node, user => 'app', database => 'postgres', application_name => "other-$i");
    if (!$session->{admitted}) {
        $refused = $session;
        last;
    }
    push @others, $session;
}
is(scalar @others, 14, '14 other sessions are admitted: 17 usable less the 3 reserved');
is($refused->{sqlstate}, '53300', 'the next one is refused with 53300');
is($refused->{message}, 'remaining connection slots are reserved for pg_connguard rules', 'saying the slots are reserved');
is($refused->{detail},
   'rule "critical" reserves 3 connections, 0 in use; 3 of 17 usable slots free, 3 reserved places unused',
   'its DETAIL names the reservation and the counts');

# Dry run: the same login is admitted and counted as a would-refusal for reservations.
$node->append_conf('postgresql.conf', "connguard.dry_run = on\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT dry_run FROM connguard.server_status});
my $dry = login($node, user => 'app', database => 'postgres', application_name => 'other-dry');
ok($dry->{admitted}, 'dry run: the login a reservation would refuse is admitted');
is($node->safe_psql('postgres', q{SELECT count(*) FROM connguard.events WHERE event = 'would_reject' AND reason = 'reserved'}),
   '1', 'dry run: a would_reject event with reason reserved');
is($node->safe_psql('postgres', q{SELECT would_reject FROM connguard.rule_stats WHERE rule_name = 'others'}), '1',
   'dry run: counted in would_reject');
close $dry->{socket};
$node->append_conf('postgresql.conf', "connguard.dry_run = off\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT NOT dry_run FROM connguard.server_status});
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'other-dry'});

# A superuser is exempt: never refused (it is counted as in use while it stays).
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');
my $dba = login($node, user => $superuser, database => 'postgres', application_name => 'other-dba');
ok($dba->{admitted}, 'a superuser is never refused for reservations');
close $dba->{socket};

# The reserving rule's own logins get in, up to its reservation.
my @critical;
for my $i (1 .. 3) {
    my $session = login($node, user => 'app', database => 'postgres', application_name => "critical-$i");
    ok($session->{admitted}, "critical login $i of 3 is admitted into its reservation");
    push @critical, $session if $session->{admitted};
}
my $fourth = login($node, user => 'app', database => 'postgres', application_name => 'critical-4');
ok(!$fourth->{admitted}, 'a fourth critical login finds no free slot');
isnt($fourth->{message}, 'remaining connection slots are reserved for pg_connguard rules',
     'and is refused by core (no reservation is unused), not for reservations: ' . ($fourth->{message} // ''));

is($node->safe_psql('postgres', q{SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND reason = 'reserved'}),
   '1', 'the refusal for reservations is an event with reason reserved');
is($node->safe_psql('postgres', q{SELECT rejected FROM connguard.rule_stats WHERE rule_name = 'others'}), '1',
   'and counts as a refusal of the login\'s own rule');

# A critical session leaves: its place is reserved again, others are still refused.
close $critical[0]{socket};
$node->poll_query_until('postgres', q{SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name LIKE 'critical-%'});
my $other = login($node, user => 'app', database => 'postgres', application_name => 'other-late');
is($other->{message}, 'remaining connection slots are reserved for pg_connguard rules',
   'a place a critical session gave back stays reserved for critical');
my $again = login($node, user => 'app', database => 'postgres', application_name => 'critical-again');
ok($again->{admitted}, 'and critical takes it');
close $_->{socket} for @others, @critical[1 .. $#critical], $again;

is($node->safe_psql('postgres', q{SELECT string_agg(rule_name || ':' || coalesce(min_connections::text, '-') || '/' || reserved_total,
                                                 ',' ORDER BY rule_name) FROM connguard.capacity}),
   '(default):-/3,critical:3/3,others:-/3', 'capacity shows each rule\'s reservation and their total');

# A rule set reserving more than the usable slots is refused as a whole; the last good stays.
$node->safe_psql('postgres', q{INSERT INTO connguard.rules (rule_name, application_name, min_connections) VALUES ('greedy', 'greedy', 15)});
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT connguard.reload_rules()');
like($err, qr/the rules reserve 18 connections \(min_connections\) but the server has 17 usable slots/,
     'reload_rules() refuses a rule set reserving more than the usable slots');
is($node->safe_psql('postgres', q{SELECT string_agg(rule_name || ':' || coalesce(min_connections::text, '-'), ',' ORDER BY rule_name)
                                  FROM connguard.active_rules}),
   'critical:3,others:-', 'the last good rule set stays in force');
$node->safe_psql('postgres', q{DELETE FROM connguard.rules WHERE rule_name = 'greedy'});

# Validation of one row.
($rc, $out, $err) = $node->psql('postgres',
    q{INSERT INTO connguard.rules (rule_name, application_name, max_connections, min_connections) VALUES ('bad', 'x', 2, 3)});
like($err, qr/rule "bad": invalid min_connections: must be at most max_connections \(2\)/, 'min_connections above max_connections is refused');
($rc, $out, $err) = $node->psql('postgres',
    q{INSERT INTO connguard.rules (rule_name, application_name, min_connections, cap_per) VALUES ('bad', 'x', 1, 'application')});
like($err, qr/invalid min_connections: needs cap_per = 'rule'/, 'and so is a reservation per application');

$node->stop;
done_testing();
