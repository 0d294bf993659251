# "Run dry, then enforce": sessions already logged as would-end are ended as soon as the
# dry run ends or their rule goes from monitor to enforce. max_session_age ends a session
# that aged while busy as soon as it goes idle. And per-rule counters keep counting when
# rule names rotate past the counter table's size, also after reset_stats().
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('rollout');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
connguard.max_rules = 2
max_prepared_transactions = 2
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
});

sub idle_session {
    my ($application) = @_;
    my $session = login($node, user => 'app', database => 'postgres', application_name => $application);
    die "not admitted: $session->{message}" unless $session->{admitted};
    return $session;
}

sub events_of {
    my ($application) = @_;
    return $node->safe_psql('postgres',
        qq{SELECT string_agg(event, ',' ORDER BY event_time) FROM connguard.events WHERE application_name = '$application'});
}

# --- A rule in monitor mode: the idler is logged as would-end, then ended once enforced.
$node->safe_psql('postgres', q{
INSERT INTO connguard.rules (rule_name, application_name, idle_timeout, mode)
VALUES ('watch', 'watched', '1 s', 'monitor');
SELECT connguard.reload_rules();
});
my $watched = idle_session('watched');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM connguard.events WHERE event = 'would_terminate' AND application_name = 'watched'}),
    'monitor mode: the idle session is logged as would-end');
sleep 1.5;
is(events_of('watched'), 'would_terminate', 'and logged once, not ended');
my $switched = time();
$node->safe_psql('postgres', q{UPDATE connguard.rules SET mode = 'enforce' WHERE rule_name = 'watch'});
my $closed = wait_closed([$watched], 5);
ok(exists $closed->{ $watched->{pid} }, 'monitor to enforce: the idler already past its limit is ended');
ok(exists $closed->{ $watched->{pid} } && $closed->{ $watched->{pid} }{at} - $switched < 2,
    'within the 1 s reload and one pass');
is(events_of('watched'), 'would_terminate,terminated', 'events: would_terminate, then terminated');

# --- connguard.dry_run: the same for a session under an enforcing rule.
$node->safe_psql('postgres', q{
INSERT INTO connguard.rules (rule_name, application_name, idle_timeout) VALUES ('dry', 'drying', '1 s');
SELECT connguard.reload_rules();
ALTER SYSTEM SET connguard.dry_run = on;
SELECT pg_reload_conf();
});
$node->poll_query_until('postgres', q{SELECT current_setting('connguard.dry_run') = 'on'});
my $drying = idle_session('drying');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM connguard.events WHERE event = 'would_terminate' AND application_name = 'drying'}),
    'dry run: the idle session is logged as would-end');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET connguard.dry_run; SELECT pg_reload_conf();});
$closed = wait_closed([$drying], 5);
ok(exists $closed->{ $drying->{pid} }, 'dry run off: the idler already past its limit is ended');
is(events_of('drying'), 'would_terminate,terminated', 'events: would_terminate, then terminated');

# --- max_session_age: a session busy when it reaches its age ends as soon as it goes idle
# (within the worker's 10 ms look while it is busy), not at the next scan.
$node->safe_psql('postgres', q{
DELETE FROM connguard.rules;
INSERT INTO connguard.rules (rule_name, application_name, max_session_age) VALUES ('aging', 'aging', '2 s');
SELECT connguard.reload_rules();
});
my $aging = idle_session('aging');
send_query($aging, 'SELECT pg_sleep(3)');
is(wait_result($aging), undef, 'a session busy past its max_session_age is left alone while busy');
my $idle_from = time();
$closed = wait_closed([$aging], 5);
ok(exists $closed->{ $aging->{pid} }, 'it is ended once idle');
my $late = exists $closed->{ $aging->{pid} } ? $closed->{ $aging->{pid} }{at} - $idle_from : 99;
cmp_ok($late, '<', 0.25, sprintf('within %.3f s of going idle (the scan period here is 2 s)', $late));
is(events_of('aging'), 'terminated', 'with an event');

# --- A change to the rules inside PREPARE TRANSACTION is refused (COMMIT PREPARED would
# never reload it); the table is left as it was.
my ($stdout, $stderr);
$node->psql('postgres', q{BEGIN; INSERT INTO connguard.rules (rule_name) VALUES ('prepared'); PREPARE TRANSACTION 'p1';},
    stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/cannot PREPARE a transaction that has changed connguard.rules/, 'PREPARE TRANSACTION of a rules change is refused');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_prepared_xacts}) . '/' .
   $node->safe_psql('postgres', q{SELECT count(*) FROM connguard.rules WHERE rule_name = 'prepared'}),
    '0/0', 'nothing is left prepared or written');
$node->safe_psql('postgres', q{BEGIN; CREATE TABLE other (i int); PREPARE TRANSACTION 'p2'; COMMIT PREPARED 'p2';});
ok(1, 'other transactions still prepare');

# --- Rule names rotating through a counter table of 2 x max_rules + 1 = 5 names.
for my $generation (1 .. 12) {
    $node->safe_psql('postgres', qq{
DELETE FROM connguard.rules;
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('gen-$generation', 'rotating', 5);
SELECT connguard.reload_rules();
});
    my $session = idle_session('rotating');
    close $session->{socket};
}
is($node->safe_psql('postgres', q{SELECT admitted FROM connguard.rule_stats WHERE rule_name = 'gen-12'}), '1',
    'after 12 rule names through a table of 5, the newest rule still counts its logins');
$node->safe_psql('postgres', 'SELECT connguard.reset_stats()');
is($node->safe_psql('postgres', q{SELECT string_agg(rule_name, ',' ORDER BY rule_name) FROM connguard.rule_stats}),
    '(default),gen-12', 'reset_stats() drops the counters of rules no longer in force');
for my $generation (13 .. 20) {
    $node->safe_psql('postgres', qq{
UPDATE connguard.rules SET rule_name = 'gen-$generation';
SELECT connguard.reload_rules();
});
    close idle_session('rotating')->{socket};
}
is($node->safe_psql('postgres', q{SELECT admitted FROM connguard.rule_stats WHERE rule_name = 'gen-20'}), '1',
    'and rules keep counting after it');

done_testing();
