# A name change counts only when PostgreSQL keeps it. A session renamed inside a transaction
# keeps its old place beside the new one until the transaction ends, so a second client
# trying to take the old place at that moment is refused; when PostgreSQL restores the old
# name without asking any check hook (ROLLBACK, ROLLBACK TO SAVEPOINT, SET LOCAL,
# set_config(..., true), a function's SET clause at its exit or on an error, RESET, DISCARD
# ALL), the session is back in its place and the other one is given back: nobody is ended or
# refused for a name PostgreSQL restored. ALTER SYSTEM and reading pg_file_settings never move
# the place of the session that runs them. Each case: rules a and b, each with a cap of 1.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('restored');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
GRANT ALTER SYSTEM ON PARAMETER application_name TO app;
GRANT SELECT ON pg_file_settings TO app;
GRANT EXECUTE ON FUNCTION pg_show_all_file_settings() TO app;
CREATE FUNCTION as_b() RETURNS text LANGUAGE sql SET application_name = 'b' AS 'SELECT current_setting(''application_name'')';
CREATE FUNCTION fail_as_b(pause float8) RETURNS text LANGUAGE plpgsql SET application_name = 'b'
    AS $$ BEGIN PERFORM pg_sleep(pause); RAISE EXCEPTION 'failing as %', current_setting('application_name'); END $$;
GRANT EXECUTE ON FUNCTION as_b(), fail_as_b(float8) TO app;
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('a', 'a', 1), ('b', 'b', 1), ('c', 'c', 1);
SELECT connguard.reload_rules();
});

sub value { return $node->safe_psql('postgres', $_[0]); }
sub in_place { return value("SELECT count(*) FROM connguard.sessions WHERE rule_name = '$_[0]'"); }
sub try_login { return login($node, user => 'app', database => 'postgres', application_name => $_[0]); }
sub ended_count { return value(q{SELECT count(*) FROM connguard.events WHERE event IN ('terminated', 'would_terminate')}); }

# Runs one case: a session logged in as a runs $rename (its place in b too until it is kept),
# a second client tries to log in as a right then (refused: the place is still the session's),
# then the session runs $restore, after which PostgreSQL has given it the name a back. Then its
# name and place are a, b's place is free again, and nobody was ended.
sub restored_case {
    my ($label, $rename, $restore) = @_;
    my $session = admitted_login($node, application_name => 'a');
    is(simple_query($session, $rename), undef, "$label: the rename is accepted");
    my $taker = try_login('a');
    is($taker->{sqlstate}, '53300', "$label: a login as a meanwhile is refused (the session still holds its place)");
    close $taker->{socket} if $taker->{admitted};
    my $restored = simple_query($session, $restore);
    ok(!defined $restored || $restored =~ /^(P0001: failing as b|22012: division by zero)/,
       "$label: PostgreSQL restores the name") or diag($restored);
    simple_query($session, 'ROLLBACK') if defined $restored;    # out of the failed transaction block
    sleep 0.3;    # room for the worker to act, were it to
    is(query_value($session, 'SHOW application_name'), 'a', "$label: the session is named a again");
    is(in_place('a') . '/' . in_place('b'), '1/0', "$label: its place is a's, b's was given back");
    my $into_b = try_login('b');
    ok($into_b->{admitted}, "$label: a login as b is admitted");
    my $into_a = try_login('a');
    is($into_a->{sqlstate}, '53300', "$label: a login as a is still refused");
    close $_->{socket} for grep { $_->{admitted} } $into_b, $into_a;
    is(query_value($session, 'SELECT 1'), '1', "$label: the session was not ended");
    close $session->{socket};
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'})
        or die 'sessions of app did not end';
}

restored_case('ROLLBACK', "BEGIN; SET application_name = 'b'", 'ROLLBACK');
restored_case('ROLLBACK TO SAVEPOINT', "BEGIN; SAVEPOINT s; SET application_name = 'b'",
              'ROLLBACK TO SAVEPOINT s; COMMIT');
restored_case('SET LOCAL', "BEGIN; SET LOCAL application_name = 'b'", 'COMMIT');
restored_case('set_config(..., true)', "BEGIN; SELECT set_config('application_name', 'b', true)", 'COMMIT');
restored_case("a function's SET clause at its exit", 'BEGIN; SELECT as_b()', 'COMMIT');
restored_case("an error inside a function with a SET clause", 'BEGIN; SELECT 1', 'SELECT fail_as_b(0)');
restored_case('an error, then ROLLBACK', "BEGIN; SET application_name = 'b'", 'SELECT 1/0');

# A function with a SET clause that fails after a while, outside any transaction block: while
# it runs, its session holds both places; its error gives b's back.
{
    my $session = admitted_login($node, application_name => 'a');
    send_query($session, 'SELECT fail_as_b(1.5)');
    $node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'b'});
    is(try_login('a')->{sqlstate}, '53300', 'during a failing function named b, a login as a is refused');
    is(try_login('b')->{sqlstate}, '53300', 'and as b too');
    like(wait_result($session), qr/^P0001: failing as b/, 'the function fails');
    is(query_value($session, 'SHOW application_name'), 'a', 'the session is named a again');
    is(in_place('a') . '/' . in_place('b'), '1/0', "its place is a's, b's was given back");
    close $session->{socket};
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'});
}

# After a savepoint's rollback, the session still holds both places until its transaction
# ends: a login as a is refused between the two.
{
    my $session = admitted_login($node, application_name => 'a');
    simple_query($session, "BEGIN; SAVEPOINT s; SET application_name = 'b'; ROLLBACK TO SAVEPOINT s");
    is(query_value($session, 'SHOW application_name'), 'a', 'after ROLLBACK TO SAVEPOINT the name is a');
    is(try_login('a')->{sqlstate}, '53300', 'a login as a is refused before the transaction ends');
    is(simple_query($session, 'COMMIT'), undef, 'COMMIT');
    ok(try_login('b')->{admitted}, 'then b is free');
    close $session->{socket};
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'});
}

# Renamed twice, the second time inside a savepoint: the name set first can come back too
# (ROLLBACK TO SAVEPOINT), so the session keeps its place as well as the login's, until the
# transaction ends; a login taking it at that moment is refused, and nobody is counted over a
# cap when the savepoint's rollback restores it.
for my $second ('c', 'a') {
    my $label = "SET b; SAVEPOINT; SET $second";
    my $session = admitted_login($node, application_name => 'a');
    is(simple_query($session, "BEGIN; SET application_name = 'b'; SAVEPOINT s; SET application_name = '$second'"),
       undef, "$label: accepted");
    my $taker = try_login('b');
    is($taker->{sqlstate}, '53300', "$label: a login as b meanwhile is refused (the first rename's place is kept)");
    is(simple_query($session, 'ROLLBACK TO SAVEPOINT s; COMMIT'), undef, "$label: ROLLBACK TO SAVEPOINT, COMMIT");
    sleep 0.3;
    close $taker->{socket} if $taker->{admitted};    # held through the COMMIT, were it admitted
    is(query_value($session, 'SHOW application_name'), 'b', "$label: the session is named b");
    is(in_place('a') . '/' . in_place('b') . '/' . in_place('c'), '0/1/0', "$label: its one place is b's");
    ok(!$node->log_contains(qr/keeps application_name "b" that PostgreSQL restored/),
       "$label: nobody counted over b's cap");
    my $into_a = try_login('a');
    ok($into_a->{admitted}, "$label: a's place was given back");
    is(try_login('b')->{sqlstate}, '53300', "$label: b is full");
    close $_->{socket} for $session, grep { $_->{admitted} } $into_a;
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'});
}

# A third name while two are kept (one more savepoint level) is refused with a clear error, and
# the transaction goes on; several renames at one level need no more room.
{
    my $session = admitted_login($node, application_name => 'a');
    like(simple_query($session, "BEGIN; SET application_name = 'b'; SAVEPOINT s; SET application_name = 'c'; "
                                . "SAVEPOINT t; SET application_name = 'd'"),
         qr/^54000: pg_connguard cannot change application_name again in this transaction/,
         'a rename at a third level is refused (54000)');
    is(simple_query($session, 'ROLLBACK TO SAVEPOINT t'), undef, 'the transaction goes on');
    is(query_value($session, 'SHOW application_name'), 'c', 'still named c');
    is(simple_query($session, 'ROLLBACK'), undef, 'ROLLBACK');
    is(query_value($session, 'SHOW application_name'), 'a', 'named a again');
    is(in_place('a') . '/' . in_place('b') . '/' . in_place('c'), '1/0/0', 'and in its place in a only');
    is(simple_query($session, "BEGIN; SET application_name = 'b'; SET application_name = 'c'; "
                              . "SET application_name = 'b'; SET application_name = 'c'; COMMIT"),
       undef, 'four renames at one level are accepted');
    is(in_place('a') . '/' . in_place('b') . '/' . in_place('c'), '0/0/1', 'and the place ends in c');
    my @free = (try_login('a'), try_login('b'));
    ok($free[0]{admitted} && $free[1]{admitted}, 'a and b are free');
    close $_->{socket} for $session, grep { $_->{admitted} } @free;
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'});
}

# A rename PostgreSQL keeps gives the old place back at once; RESET and DISCARD ALL then set
# the login's name without a check: into a group with room, the place moves there exactly.
for my $reset ('RESET application_name', 'DISCARD ALL') {
    my $session = admitted_login($node, application_name => 'a');
    is(simple_query($session, "SET application_name = 'b'"), undef, "$reset: a kept rename to b");
    is(in_place('a') . '/' . in_place('b'), '0/1', "$reset: the place moved to b");
    is(simple_query($session, $reset), undef, "$reset: back to the login's name a");
    is(in_place('a') . '/' . in_place('b'), '1/0', "$reset: the place is back in a");
    is(try_login('a')->{sqlstate}, '53300', "$reset: a is full again");
    ok(try_login('b')->{admitted}, "$reset: b is free");
    close $session->{socket};
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'});
}

# RESET into a group filled meanwhile (the rename had been kept, so the place was someone
# else's to take): the session gets the name PostgreSQL gave it and is counted there, over
# the cap until one leaves; it is not ended.
{
    my $session = admitted_login($node, application_name => 'a');
    simple_query($session, "SET application_name = 'b'");
    my $taker = admitted_login($node, application_name => 'a');
    is(simple_query($session, 'RESET application_name'), undef, 'RESET into a group filled meanwhile');
    sleep 0.5;
    is(query_value($session, 'SELECT 1'), '1', 'the session is not ended');
    is(query_value($taker, 'SELECT 1'), '1', 'nor the one that took the place');
    is(in_place('a') . '/' . in_place('b'), '2/0', 'both are counted in a (over its cap), b is free');
    ok($node->log_contains(qr/keeps application_name "a" that PostgreSQL restored; its group under rule "a" is over its cap/),
       'the server log says so');
    is(try_login('a')->{sqlstate}, '53300', 'further logins as a are refused');
    close $_->{socket} for $session, $taker;
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'});
}

# ALTER SYSTEM validates its value as a configuration file's: the issuer keeps its name and
# place, also when the group it names is full; reading pg_file_settings likewise.
{
    my $filler = admitted_login($node, application_name => 'b');
    my $session = admitted_login($node, application_name => 'a');
    is(simple_query($session, "ALTER SYSTEM SET application_name = 'b'"), undef,
       'ALTER SYSTEM SET application_name to a full group is not refused');
    is(query_value($session, 'SHOW application_name'), 'a', 'the issuer keeps its name');
    is(in_place('a') . '/' . in_place('b'), '1/1', 'and its place');
    is(query_value($session, q{SELECT setting FROM pg_file_settings WHERE name = 'application_name'}), 'b',
       'reading pg_file_settings');
    is(in_place('a') . '/' . in_place('b'), '1/1', 'moves no place either');
    is(simple_query($session, 'ALTER SYSTEM RESET application_name'), undef, 'ALTER SYSTEM RESET');
    close $_->{socket} for $filler, $session;
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'});
}

# Many sessions renaming in transactions that roll back or commit at random while logins try
# both groups: at quiet moments every group's count equals the sessions that hold its name.
{
    $node->safe_psql('postgres', q{
        DELETE FROM connguard.rules;
        INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per)
            VALUES ('g', 'g-*', 3, 'application');
        SELECT connguard.reload_rules();
    });
    my @sessions = map { admitted_login($node, application_name => 'g-' . ($_ % 4)) } 0 .. 7;
    srand(27);
    for my $round (1 .. 40) {
        for my $session (@sessions) {
            my $to = 'g-' . int(rand(4));
            my $end = (qw(COMMIT ROLLBACK), 'ROLLBACK TO SAVEPOINT s; COMMIT')[ int(rand(3)) ];
            my $error = simple_query($session, "BEGIN; SAVEPOINT s; SET application_name = '$to'; $end");
            simple_query($session, 'ROLLBACK') if defined $error;    # refused at the SET: a full group
        }
        my $login = try_login('g-' . int(rand(4)));
        close $login->{socket} if $login->{admitted};
    }
    $node->poll_query_until('postgres', q{SELECT count(*) = 8 FROM pg_stat_activity WHERE usename = 'app'});
    is(value(q{SELECT count(*) FROM connguard.sessions s WHERE usename = 'app' AND cap_used IS DISTINCT FROM
                   (SELECT count(*) FROM pg_stat_activity p WHERE p.usename = 'app' AND p.application_name = s.application_name)}),
       '0', '320 renames committed or rolled back: each group counts the sessions pg_stat_activity shows under its name');
    cmp_ok(value(q{SELECT max(n) FROM (SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'app' GROUP BY application_name) s}),
           '<=', 3, 'and no group is over its cap of 3');
    close $_->{socket} for @sessions;
}

is(ended_count(), '0', 'nobody was ended in any case');
$node->stop;
done_testing();
