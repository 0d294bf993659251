# What the client of an ended session reads: core PostgreSQL's SQLSTATEs and words for its
# timeouts (57P05 idle, 25P03 idle in transaction, also for a blocker), 57P05 for age, 53300
# for a rename into a full group, each with a DETAIL naming pg_connguard's rule, the time and
# the limit; a DBA's pg_terminate_backend keeps 57P01 and its words; close_sessions() keeps
# 57P01 with pg_connguard's DETAIL. psql shows the message and DETAIL as it would core's.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('endings');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE TABLE ledger (id int PRIMARY KEY, note text);
GRANT ALL ON ledger TO app;
INSERT INTO ledger VALUES (1, 'row');
INSERT INTO connguard.rules (rule_name, application_name, idle_timeout, idle_in_transaction_timeout,
                             idle_blocker_timeout, max_session_age, max_connections) VALUES
    ('idle-app', 'idler', '1 s', NULL, NULL, NULL, NULL),
    ('leaky-app', 'leaker', NULL, '1 s', NULL, NULL, NULL),
    ('lock-app', 'locker', NULL, '1 min', '1 s', NULL, NULL),
    ('old-app', 'aged', NULL, NULL, NULL, '1 s', NULL),
    ('capped', 'full', NULL, NULL, NULL, NULL, 1);
});
$node->safe_psql('postgres', 'SELECT connguard.reload_rules()');

sub open_session { return admitted_login($node, @_); }

sub ended {
    my ($session, $timeout) = @_;
    return wait_closed([$session], $timeout // 5)->{ $session->{pid} } // { sqlstate => 'not ended' };
}

# --- idle: 57P05, core's words, pg_connguard's DETAIL
my $idler = open_session(application_name => 'idler');
my $end = ended($idler);
is($end->{sqlstate}, '57P05', 'idle: SQLSTATE 57P05, as for idle_session_timeout');
is($end->{message}, 'terminating connection due to idle-session timeout', 'idle: core\'s message');
like($end->{detail}, qr/^pg_connguard rule "idle-app": idle for 1\.\d{3} s; limit 1 s$/, 'idle: the DETAIL names rule, time and limit');

# --- idle in transaction: 25P03
my $leaker = open_session(application_name => 'leaker');
is(simple_query($leaker, "BEGIN; UPDATE ledger SET note = 'leaked' WHERE id = 1"), undef, 'a transaction is left open');
$end = ended($leaker);
is($end->{sqlstate}, '25P03', 'idle in transaction: SQLSTATE 25P03, as for idle_in_transaction_session_timeout');
is($end->{message}, 'terminating connection due to idle-in-transaction timeout', 'idle in transaction: core\'s message');
like($end->{detail}, qr/^pg_connguard rule "leaky-app": idle in transaction for 1\.\d{3} s; limit 1 s$/,
     'idle in transaction: the DETAIL');

# --- a blocker: 25P03 too (it is idle in a transaction), the DETAIL gives its blocker limit
my $locker = open_session(application_name => 'locker');
is(simple_query($locker, "BEGIN; UPDATE ledger SET note = 'held' WHERE id = 1"), undef, 'the locker holds a row');
my $waiter = open_session(application_name => 'waiter');
send_query($waiter, "UPDATE ledger SET note = 'waited' WHERE id = 1");
$end = ended($locker, 10);
is($end->{sqlstate}, '25P03', 'blocker: SQLSTATE 25P03');
like($end->{detail}, qr/^pg_connguard rule "lock-app": idle in transaction for 1\.\d{3} s; limit 1 s$/, 'blocker: the DETAIL');
is(wait_result($waiter), undef, 'the waiter proceeds');

# --- age: 57P05 with its own words
my $aged = open_session(application_name => 'aged');
$end = ended($aged);
is($end->{sqlstate}, '57P05', 'age: SQLSTATE 57P05');
is($end->{message}, 'terminating connection due to maximum session age', 'age: says so');
like($end->{detail}, qr/^pg_connguard rule "old-app": idle for \d+\.\d{3} s; session age limit 1 s$/, 'age: the DETAIL');

# --- a rename into a full group that the worker ends (its backstop, for a name the session
# holds without any check: a nameless session takes application_name from the configuration
# file at a reload, outside any transaction): 53300
my $taker = open_session(application_name => 'full');
my $nameless = open_session();
$node->safe_psql('postgres', q{ALTER SYSTEM SET application_name = 'full'; SELECT pg_reload_conf();});
sleep 0.3;
send_query($nameless, 'SELECT 1');    # the reload is applied when it next reads a query
$end = ended($nameless);                # its result, then the FATAL (or the FATAL during it)
$node->safe_psql('postgres', q{ALTER SYSTEM RESET application_name; SELECT pg_reload_conf();});
is($end->{sqlstate}, '53300', 'a rename into a full group ended by the worker: SQLSTATE 53300');
like($end->{detail}, qr/^pg_connguard: renamed to application_name "full": rule "capped" allows 1 connection; 1 is in use$/,
     'the DETAIL names the group and the rule');
close $taker->{socket};

# --- a DBA's own pg_terminate_backend keeps PostgreSQL's 57P01 and words, without our DETAIL
my $plain = open_session(application_name => 'plain');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($plain->{pid})");
$end = ended($plain);
is($end->{sqlstate}, '57P01', "a DBA's pg_terminate_backend: 57P01");
is($end->{message}, 'terminating connection due to administrator command', 'with PostgreSQL\'s words');
is($end->{detail}, undef, 'and no DETAIL of ours');

# --- close_sessions(): a DBA's request too, 57P01, with pg_connguard's DETAIL
my $cleaned = open_session(application_name => 'cleanup');
$node->safe_psql('postgres', "SELECT * FROM connguard.close_sessions(application_name => 'cleanup', dry_run => false)");
$end = ended($cleaned);
is($end->{sqlstate}, '57P01', 'close_sessions(): 57P01');
like($end->{detail}, qr/^pg_connguard: closed by connguard\.close_sessions\(\): idle for \d+\.\d{3} s$/, 'with our DETAIL');

# --- A refused close_sessions() leaves no notice behind: a later DBA termination is plain 57P01
$node->safe_psql('postgres', 'CREATE ROLE helper LOGIN; GRANT USAGE ON SCHEMA connguard TO helper; '
                             . 'GRANT EXECUTE ON FUNCTION connguard.close_sessions(text, text, text, interval, boolean) TO helper');
my $kept = open_session(application_name => 'kept');
my ($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM connguard.close_sessions(application_name => 'kept', dry_run => false)",
                                   extra_params => ['-U', 'helper']);
like($err, qr/permission denied to terminate process|must be a member of the role whose process is being terminated/,
     'close_sessions() without the right to signal is refused');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($kept->{pid})");
$end = ended($kept);
is($end->{detail}, undef, 'and the later DBA termination carries no DETAIL of ours');

# --- psql prints the message and the DETAIL, as for core's idle_session_timeout
my ($in, $psql_out, $psql_err) = ('', '', '');
my $psql = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres') . ' application_name=idler user=app' ],
                           '<', \$in, '>', \$psql_out, '2>', \$psql_err);
$in .= "SELECT 'before';\n";
$psql->pump until $psql_out =~ /before/;
sleep(2.5);
$in .= "SELECT 'after';\n";
$psql->finish;
like($psql_err, qr/FATAL:  terminating connection due to idle-session timeout\nDETAIL:  pg_connguard rule "idle-app": idle for 1\.\d{3} s; limit 1 s/,
     'psql shows the message and the DETAIL');

$node->stop;
done_testing();
