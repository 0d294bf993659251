# max_transaction_time (issue 30): a transaction older than its rule's limit, running a
# statement or idle in it, is ended by the worker with core 17's words (FATAL 25P04
# "terminating connection due to transaction timeout") on every major, 15 included; core's
# own timeouts set by the session cannot lift it; action 'cancel' cancels a running
# statement (57014) and the session lives; short transactions are never touched; a prepared
# transaction is no session's; monitor mode and connguard.dry_run only record; the setting is the default; the
# views and counters show it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('transaction_time');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_prepared_transactions = 2
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE TABLE ledger (id int PRIMARY KEY);
GRANT ALL ON ledger TO app;
INSERT INTO connguard.rules (rule_name, application_name, max_transaction_time) VALUES ('tx', 'tx-*', '1 s');
INSERT INTO connguard.rules (rule_name, application_name, max_transaction_time, action)
    VALUES ('txc', 'txc-*', '1 s', 'cancel');
INSERT INTO connguard.rules (rule_name, application_name, max_transaction_time, mode)
    VALUES ('txm', 'txm-*', '1 s', 'monitor');
INSERT INTO connguard.rules (rule_name, application_name, max_transaction_time) VALUES ('txl', 'txl-*', '1 hour');
SELECT connguard.reload_rules();
});
my $major = $node->safe_psql('postgres', q{SELECT current_setting('server_version_num')::int / 10000});

sub open_session { return admitted_login($node, @_); }

# The transaction's age the worker measured when it acted on $pid, from the server log.
sub logged_age {
    my ($pid) = @_;
    my $log = slurp_file($node->logfile);
    return $log =~ /pg_connguard: (?:ending|cancelling the statement of) session $pid \(transaction_time\): transaction open for ([0-9.]+) s/
      ? $1 : undef;
}

sub check_ended {
    my ($session, $label, $began) = @_;
    my $closed = wait_closed([$session], 10);
    my $end = $closed->{ $session->{pid} };
    ok($end, "$label: the session is ended") or return;
    is($end->{sqlstate}, '25P04', "$label: FATAL 25P04, core 17's code for a transaction timeout");
    is($end->{message}, 'terminating connection due to transaction timeout', "$label: core 17's message");
    like($end->{detail} // '', qr/^pg_connguard rule "tx": transaction open for 1\.\d{3} s; transaction time limit 1 s$/,
         "$label: the DETAIL names the rule, the transaction's age and the limit");
    my $age = logged_age($session->{pid});
    ok(defined $age && $age >= 1.0, "$label: not before the limit (server's measure: " . ($age // 'none') . ' s)');
    ok($end->{at} - $began < 2.5, sprintf("$label: soon after it (%.3f s after the transaction began, client's clock)",
                                          $end->{at} - $began));
}

# --- A running statement past the limit: the session is ended (terminate, the default).
my $busy = open_session(application_name => 'tx-busy');
my $began = time();
send_query($busy, 'SELECT pg_sleep(30)');
check_ended($busy, 'a statement running past 1 s', $began);

# --- Idle in a transaction past the limit, with short statements before: ended too.
my $idle = open_session(application_name => 'tx-idle');
$began = time();
is(simple_query($idle, 'BEGIN; SELECT pg_sleep(0.3)'), undef, 'a transaction begins with a short statement');
is(simple_query($idle, 'SELECT pg_sleep(0.3)'), undef, 'and runs another');
check_ended($idle, 'a transaction idle after short statements', $began);

# --- Core's own timeouts, set off by the session, change nothing; ours cannot be set.
my $stubborn = open_session(application_name => 'tx-stubborn');
is(simple_query($stubborn, 'SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0'), undef,
   'the session turns core\'s timeouts off');
if ($major >= 17) {
    is(simple_query($stubborn, 'SET transaction_timeout = 0'), undef, "and core's transaction_timeout ($major)");
}
like(simple_query($stubborn, q{SET connguard.max_transaction_time = 0}), qr/^55P02: /,
     'connguard.max_transaction_time cannot be set by a session (55P02)');
$began = time();
send_query($stubborn, 'BEGIN; SELECT pg_sleep(30)');
check_ended($stubborn, 'a session that turned core\'s timeouts off', $began);

# --- Short transactions, however many, are never touched.
my $short = open_session(application_name => 'tx-short');
my $failed = 0;
my $until = time() + 2.5;
while (time() < $until) {
    $failed++ if defined simple_query($short, 'BEGIN; SELECT pg_sleep(0.05); COMMIT');
}
is($failed, 0, 'transactions of 50 ms for 2.5 s all commit');
is(query_value($short, 'SELECT 1'), '1', 'and the session is still there');

# --- action 'cancel': a running statement is cancelled, the session lives.
my $cancelled = open_session(application_name => 'txc-busy');
$began = time();
my $error = simple_query($cancelled, 'BEGIN; SELECT pg_sleep(30)');
my $took = time() - $began;
is($error, '57014: canceling statement due to transaction timeout',
   'cancel: the statement fails with 57014 "canceling statement due to transaction timeout"');
like($cancelled->{error}{D} // '', qr/^pg_connguard rule "txc": transaction open for 1\.\d{3} s; transaction time limit 1 s$/,
     'cancel: the DETAIL names the rule, the age and the limit');
ok($took >= 1.0 && $took < 2.5, sprintf('cancel: at the limit (%.3f s)', $took));
sleep(1.5);
is(simple_query($cancelled, 'ROLLBACK'), undef,
   'cancel: the aborted transaction is left to the client (no idle limit: not ended 1.5 s later), ROLLBACK works');
is(query_value($cancelled, 'SELECT 42'), '42', 'cancel: and the session runs the next query');
$error = simple_query($cancelled, 'SELECT pg_sleep(30)');
is($error, '57014: canceling statement due to transaction timeout', 'cancel: a single statement is cancelled too');
is(query_value($cancelled, 'SELECT 43'), '43', 'cancel: and the session lives');
is(simple_query($cancelled, q{SELECT pg_cancel_backend(pg_backend_pid())}), '57014: canceling statement due to user request',
   'cancel: a later cancel by someone else keeps PostgreSQL\'s words');
my $idle_cancel = open_session(application_name => 'txc-idle');
is(simple_query($idle_cancel, 'BEGIN; SELECT 1'), undef, 'cancel: a transaction goes idle');
my $closed = wait_closed([$idle_cancel], 10);
is($closed->{ $idle_cancel->{pid} }{sqlstate}, '25P04',
   'cancel: a transaction idle past the limit is ended (a cancel does nothing to an idle session)');

# --- A prepared transaction belongs to no session and is never ended.
my $preparer = open_session(application_name => 'tx-2pc');
is(simple_query($preparer, q{BEGIN; INSERT INTO ledger VALUES (1); PREPARE TRANSACTION 'p1'}), undef,
   '2PC: the session prepares a transaction');
sleep(1.8);
is(query_value($preparer, 'SELECT count(*) FROM pg_prepared_xacts'), '1', '2PC: the session and its prepared transaction are kept');
$node->safe_psql('postgres', q{COMMIT PREPARED 'p1'});
is($node->safe_psql('postgres', 'SELECT count(*) FROM ledger'), '1', '2PC: and it commits');

# --- monitor: recorded, not done.
my $watched = open_session(application_name => 'txm-busy');
is(simple_query($watched, 'BEGIN; SELECT pg_sleep(1.8); COMMIT'), undef, 'monitor: a 1.8 s transaction commits');
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM connguard.events
    WHERE event = 'would_terminate' AND reason = 'transaction_time' AND rule_name = 'txm'}),
   'monitor: a would_terminate event with reason transaction_time');

# --- The views: the limit and its deadline.
my $long = open_session(application_name => 'txl-view');
is(simple_query($long, 'BEGIN; SELECT 1'), undef, 'a transaction under a 1 hour limit');
is($node->safe_psql('postgres', qq{SELECT limit_reason || ' ' || limit_value || ' ' ||
    (deadline = xact_start + interval '1 hour') FROM connguard.sessions WHERE pid = $long->{pid}}),
   'transaction_time 01:00:00 true', 'sessions: the limit in force and its deadline, from the transaction start');
is(simple_query($long, 'COMMIT'), undef, 'it commits');
is($node->safe_psql('postgres', q{SELECT string_agg(rule_name || ' ' || COALESCE(max_transaction_time::text, '-') || ' ' || action, ', '
    ORDER BY rule_name) FROM connguard.active_rules}),
   'tx 00:00:01 terminate, txc 00:00:01 cancel, txl 01:00:00 terminate, txm 00:00:01 terminate',
   'active_rules shows max_transaction_time and action');
is($node->safe_psql('postgres', q{SELECT rule_name || ' ' || terminated_transaction_time || ' ' || cancelled_transaction_time
    FROM connguard.rule_stats WHERE rule_name IN ('tx', 'txc') ORDER BY rule_name}),
   "tx 3 0\ntxc 1 2", 'rule_stats counts endings and cancels for transaction time');
is($node->safe_psql('postgres', q{SELECT count(*) FROM connguard.events WHERE event = 'cancelled' AND reason = 'transaction_time'
    AND rule_name = 'txc'}), '2', 'events: each cancel');
like($node->safe_psql('postgres', 'SELECT connguard.metrics()'),
     qr/connguard_rule_terminated_total\{rule="tx",reason="transaction_time"\} 3\n/, 'metrics(): endings by reason transaction_time');
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM connguard.pool_advice
    WHERE terminated_transaction_time > 0 AND 'long transactions' = ANY(findings)}),
   'pool_advice: the groups whose transactions were ended have the finding long transactions');
like($node->safe_psql('postgres', q{SELECT evidence[array_position(findings, 'long transactions')] FROM connguard.pool_advice
    WHERE 'long transactions' = ANY(findings) ORDER BY terminated_transaction_time DESC LIMIT 1}),
     qr/^\d+ sessions? ended for a transaction open past max_transaction_time in the last /,
     'with its evidence: how many were ended, and over which window');

# --- connguard.dry_run: recorded as would_terminate / would_cancel, nothing done.
$node->safe_psql('postgres', q{ALTER SYSTEM SET connguard.dry_run = on; SELECT pg_reload_conf()});
sleep(0.5);
my $dry = open_session(application_name => 'tx-dry');
my $dry_cancel = open_session(application_name => 'txc-dry');
is(simple_query($dry, 'BEGIN; SELECT pg_sleep(1.8); COMMIT'), undef, 'dry run: a 1.8 s transaction under rule tx commits');
is(simple_query($dry_cancel, 'BEGIN; SELECT pg_sleep(1.8); COMMIT'), undef,
   'dry run: and one under rule txc (action cancel), its statement not cancelled');
is($node->safe_psql('postgres', q{SELECT string_agg(event || ' ' || rule_name, ', ' ORDER BY rule_name) FROM connguard.events
    WHERE reason = 'transaction_time' AND application_name IN ('tx-dry', 'txc-dry')}),
   'would_terminate tx, would_cancel txc', 'dry run: each is an event would_terminate / would_cancel, once');
is($node->safe_psql('postgres', q{SELECT rule_name || ' ' || terminated_transaction_time || ' ' || cancelled_transaction_time
    FROM connguard.rule_stats WHERE rule_name IN ('tx', 'txc') ORDER BY rule_name}),
   "tx 3 0\ntxc 1 2", 'dry run: nothing counted as done');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET connguard.dry_run; SELECT pg_reload_conf()});
sleep(0.5);

# --- connguard.max_transaction_time is the default of sessions matching no rule (or NULL).
$node->safe_psql('postgres', q{ALTER SYSTEM SET connguard.max_transaction_time = '1s'; SELECT pg_reload_conf()});
sleep(0.5);
my $plain = open_session(application_name => 'plain');
is(simple_query($plain, 'BEGIN; SELECT 1'), undef, 'default: a session under no rule begins a transaction');
$closed = wait_closed([$plain], 10);
is($closed->{ $plain->{pid} }{sqlstate}, '25P04', 'default: connguard.max_transaction_time ends it');
like($closed->{ $plain->{pid} }{detail} // '', qr/rule "\(default\)": transaction open for 1\.\d+ s/,
     'default: the DETAIL names the defaults');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET connguard.max_transaction_time; SELECT pg_reload_conf()});

$node->stop;
done_testing();
