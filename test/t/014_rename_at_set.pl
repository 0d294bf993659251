# A rename into a full group is refused at the SET, not punished afterwards: SET
# application_name, set_config and a function's SET clause into a group with no room fail
# with ERROR 53300 naming the group and the rule, and the session keeps its name and its
# place; a rename into a group with room moves the place at once; many renames and logins at
# once keep every count exact. A session admitted without a name that sets one before its
# first query (pgjdbc's default) is refused as a login: FATAL 53300, recorded as 'rejected'.
# A rename in a transaction keeps the old place until the transaction commits, so a rolled-back
# SET never lands a session in a group filled meanwhile (TAP 021 takes every such path).
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
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\nmax_connections = 120\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE FUNCTION as_full() RETURNS int LANGUAGE sql SET application_name = 'full' AS 'SELECT 1';
GRANT EXECUTE ON FUNCTION as_full() TO app;
INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per) VALUES
    ('full-cap', 'full', 1, 'application'),
    ('roomy', 'roomy', 2, 'application'),
    ('crowd', 'crowd-*', 5, 'application'),
    ('jdbc', 'PostgreSQL JDBC Driver', 3, 'application');
});
$node->safe_psql('postgres', 'SELECT connguard.reload_rules()');

sub open_session { return admitted_login($node, @_); }
sub value { return $node->safe_psql('postgres', $_[0]); }
sub group_count { return value("SELECT count(*) FROM pg_stat_activity WHERE application_name = '$_[0]'"); }

# --- Into a full group: refused at the SET, name and place kept
my $holder = open_session(application_name => 'full');
my $other = open_session(application_name => 'batch');
is(simple_query($other, "SET application_name = 'full'"), '53300: too many connections for application "full"',
   'SET application_name into a full group fails with 53300, naming the group');
is(query_value($other, 'SHOW application_name'), 'batch', 'the session keeps its name');
is(value("SELECT count(*) FROM connguard.sessions WHERE application_name = 'batch'"), '1', 'and its place');
ok($node->log_contains(qr/ERROR:  too many connections for application "full"\n.*DETAIL:  rule "full-cap" allows 1 connection per application; 1 is in use\. The session keeps application_name "batch"\./),
   'the DETAIL names the rule and says the session keeps its name');
is(simple_query($other, "SELECT set_config('application_name', 'full', false)"), '53300: too many connections for application "full"',
   'set_config is refused alike');
is(simple_query($other, 'SELECT as_full()'), '53300: too many connections for application "full"',
   "a function's SET clause is refused alike");
is(query_value($other, 'SHOW application_name'), 'batch', 'still its own name');
is(value("SELECT rejected FROM connguard.rule_stats WHERE rule_name = 'full-cap'"), '3', 'each refusal is counted');
is(value("SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND rule_name = 'full-cap' AND pid = $other->{pid}"),
   '3', 'and recorded as a rejected event');
is(value("SELECT count(*) FROM connguard.events WHERE event = 'terminated'"), '0', 'nothing was ended');
ok(!$other->{lost} && query_value($other, 'SELECT 1') eq '1', 'the session works on');

# --- Into a group with room: the place moves at once
my $mover = open_session(application_name => 'batch');
is(simple_query($mover, "SET application_name = 'roomy'"), undef, 'a rename into a group with room succeeds');
is(value("SELECT cap_used FROM connguard.sessions WHERE pid = $mover->{pid}"), '1', 'and holds a place there at once');
my $second = open_session(application_name => 'roomy');
my $third = login($node, user => 'app', database => 'postgres', application_name => 'roomy');
is($third->{sqlstate}, '53300', 'the group of 2 is then full for a login');
is(simple_query($mover, "SET application_name = 'batch'"), undef, 'renaming out of the group');
my $fourth = open_session(application_name => 'roomy');
ok($fourth->{admitted}, 'frees its place at once');
is(simple_query($mover, "RESET application_name"), undef, 'RESET to the default name');
is(simple_query($mover, "SET application_name = 'roomy'"), '53300: too many connections for application "roomy"',
   'and back into the full group is refused');
close $_->{socket} for $second, $fourth;

# --- Many renames and logins at once: exact counts
my @crowd = map { open_session(application_name => 'before') } 1 .. 40;
my @logins = map { start_login($node, user => 'app', database => 'postgres', application_name => 'crowd-' . ($_ % 4)) } 0 .. 19;
send_query($crowd[$_], "SET application_name = 'crowd-" . ($_ % 4) . "'") for 0 .. 39;
my @admitted = grep { $_->{admitted} } map { finish_login($_) } @logins;
my @renamed = grep { !defined wait_result($crowd[$_]) } 0 .. 39;
is(scalar(@renamed) + scalar(@admitted), 20, '40 renames and 20 logins into 4 groups of 5: exactly 20 get in');
is(value(q{SELECT string_agg(n::text, ',') FROM (SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'crowd-%' GROUP BY application_name) g}),
   '5,5,5,5', 'each group holds exactly its cap');
is(value(q{SELECT count(*) FROM connguard.sessions WHERE application_name = 'before'}), 40 - scalar(@renamed),
   'the refused renames keep their names and places');
is(value("SELECT count(*) FROM connguard.events WHERE event = 'terminated'"), '0', 'nobody was ended');
close $_->{socket} for @crowd, @admitted;

# --- pgjdbc's default: no name at login, SET application_name before the first query
my @jdbc = map { open_session() } 1 .. 3;
is(simple_query($_, "SET extra_float_digits = 3"), undef, 'a nameless login sets its session up') for @jdbc;
is(simple_query($_, "SET application_name = 'PostgreSQL JDBC Driver'"), undef, 'and names itself into a group of 3') for @jdbc;
my $fourth_jdbc = open_session();
is(simple_query($fourth_jdbc, "SET extra_float_digits = 3"), undef, 'a fourth one sets up');
is(simple_query($fourth_jdbc, "SET application_name = 'PostgreSQL JDBC Driver'"),
   '53300: too many connections for application "PostgreSQL JDBC Driver"', 'its name is refused with 53300, as a login');
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $fourth_jdbc->{pid}"),
   'and the connection is closed (FATAL), as at login');
is(group_count('PostgreSQL JDBC Driver'), '3', 'never a fourth session in the group');
is(value(q{SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND rule_name = 'jdbc'}), '1', "recorded as 'rejected'");
my $named_later = open_session();
is(query_value($named_later, 'SELECT 1'), '1', 'a nameless session that has run a query');
is(simple_query($named_later, "SET application_name = 'PostgreSQL JDBC Driver'"),
   '53300: too many connections for application "PostgreSQL JDBC Driver"', 'is refused at the SET');
is(query_value($named_later, 'SELECT 2'), '2', 'but keeps its connection (ERROR, not FATAL)');
close $_->{socket} for @jdbc, $named_later;

# --- A rename is kept only at commit: until then the old place stays the session's, and a
# rolled-back SET gives it its name back without ending anyone (more cases in TAP 021)
my $keeper = open_session(application_name => 'full-b');
$node->safe_psql('postgres', q{INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('b-cap', 'full-b', 1)});
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM connguard.active_rules WHERE rule_name = 'b-cap'});
is(simple_query($keeper, "BEGIN; SET application_name = 'elsewhere'"), undef, 'in a transaction, the only full-b session renames away');
my $taker = login($node, user => 'app', database => 'postgres', application_name => 'full-b');
is($taker->{sqlstate}, '53300', 'its place is still its own: another login as full-b is refused');
is(simple_query($keeper, 'ROLLBACK'), undef, 'the rename is rolled back: its name is full-b again');
sleep 0.5;
is(query_value($keeper, 'SELECT 1'), '1', 'and it is not ended');
is(group_count('full-b'), '1', 'the cap held');
is(value("SELECT count(*) FROM connguard.events WHERE event = 'terminated'"), '0', 'nobody was ended');

$node->stop;
done_testing();
