# Admission control at login: exact caps under a storm of simultaneous logins, each
# cap_per, CIDR rules over TCP, places freed by logins that fail later, exemptions,
# monitor mode, and application_name given through the "options" startup parameter.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('admission');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 260
listen_addresses = '127.0.0.1'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE ROLE ops LOGIN;
CREATE ROLE vip LOGIN;
CREATE ROLE limited LOGIN CONNECTION LIMIT 1;
CREATE ROLE repl LOGIN REPLICATION;
});
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');

sub set_rules {
    my ($sql) = @_;
    $node->safe_psql('postgres', "DELETE FROM connguard.rules; $sql");
    $node->safe_psql('postgres', 'SELECT connguard.reload_rules()');
}

sub close_all { close $_->{socket} for grep { $_->{admitted} } @_; }

sub wait_gone {
    my ($where) = @_;
    $node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE $where")
      or die "sessions did not end: $where";
}

# --- 200 logins at the same instant against a cap of 10.
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per)
            VALUES ('storm-cap', 'storm', 10, 'application')});
my @started = map { start_login($node, user => 'app', database => 'postgres', application_name => 'storm') } 1 .. 200;
my @results = map { finish_login($_) } @started;
my @admitted = grep { $_->{admitted} } @results;
my @refused = grep { !$_->{admitted} } @results;
is(scalar @admitted, 10, '200 simultaneous logins against a cap of 10: exactly 10 admitted');
is(scalar(grep { $_->{sqlstate} eq '53300' } @refused), 190, 'the other 190 are refused with SQLSTATE 53300');
is(scalar(grep { $_->{message} eq 'too many connections for application "storm"' } @refused), 190,
    'each refusal names the application');
is(scalar(grep { $_->{detail} eq 'rule "storm-cap" allows 10 connections per application; 10 are in use' } @refused),
    190, 'and its detail names the rule, the cap and the count in use');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'storm'"), '10',
    'pg_stat_activity agrees: 10 sessions');

close_all(@admitted);
wait_gone("application_name = 'storm'");
@results = map { login($node, user => 'app', database => 'postgres', application_name => 'storm') } 1 .. 11;
is(scalar(grep { $_->{admitted} } @results[0 .. 9]), 10, 'once the first 10 disconnect, 10 more are admitted');
ok(!$results[10]{admitted}, 'and the 11th is refused again');
close_all(@results);
wait_gone("application_name = 'storm'");

# --- cap_per application: each application name has its own cap.
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per)
            VALUES ('svc', 'svc-*', 3, 'application')});
my %admitted_per_app;
my @svc;
for my $app (qw(svc-a svc-b svc-c)) {
    for (1 .. 5) {
        my $r = login($node, user => 'app', database => 'postgres', application_name => $app);
        push @svc, $r;
        $admitted_per_app{$app}++ if $r->{admitted};
        like($r->{message}, qr/^too many connections for application "\Q$app\E"$/, "refusal names $app")
          if !$r->{admitted} && $app eq 'svc-b';
    }
}
is_deeply(\%admitted_per_app, { 'svc-a' => 3, 'svc-b' => 3, 'svc-c' => 3 }, 'three applications get 3 apiece');
close_all(@svc);

# --- cap_per client_addr with a CIDR rule over TCP; Unix sockets match only rules without client_addr.
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, client_addr, max_connections, cap_per)
            VALUES ('loopback', 'net', '127.0.0.0/8', 2, 'client_addr')});
my @tcp = map { login($node, host => '127.0.0.1', user => 'app', database => 'postgres', application_name => 'net') } 1 .. 3;
is(scalar(grep { $_->{admitted} } @tcp), 2, 'two TCP logins from 127.0.0.1 are admitted');
is($tcp[2]{message}, 'too many connections for client address "127.0.0.1"', 'the third is refused, naming the address');
is($tcp[2]{detail}, 'rule "loopback" allows 2 connections per client address; 2 are in use', 'with the rule in the detail');
my @unix = map { login($node, user => 'app', database => 'postgres', application_name => 'net') } 1 .. 3;
is(scalar(grep { $_->{admitted} } @unix), 3, 'Unix-socket logins do not match a rule with client_addr');
close_all(@tcp, @unix);

set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, client_addr, max_connections)
            VALUES ('elsewhere', 'net', '10.0.0.0/8', 0)});
my $outside = login($node, host => '127.0.0.1', user => 'app', database => 'postgres', application_name => 'net');
ok($outside->{admitted}, 'a TCP client outside the rule network is not limited by it');
close_all($outside);

# --- A login that fails after the hook (role CONNECTION LIMIT) does not keep a place.
set_rules(q{INSERT INTO connguard.rules (rule_name, role_name, max_connections, cap_per)
            VALUES ('limited-cap', 'limited', 2, 'role')});
my $first = login($node, user => 'limited', database => 'postgres', application_name => 'x');
ok($first->{admitted}, 'the first session of the role is admitted');
my $second = login($node, user => 'limited', database => 'postgres', application_name => 'x');
is($second->{message}, 'too many connections for role "limited"', 'the second fails on the role CONNECTION LIMIT');
$node->safe_psql('postgres', 'ALTER ROLE limited CONNECTION LIMIT -1');
my $third = login($node, user => 'limited', database => 'postgres', application_name => 'x');
ok($third->{admitted}, 'the failed login left no place behind: one more fits under the cap of 2');
my $fourth = login($node, user => 'limited', database => 'postgres', application_name => 'x');
is($fourth->{sqlstate}, '53300', 'and the cap of 2 still holds');
close_all($first, $third);

# --- Exemptions: superusers, connguard.exempt_roles, exempt rules, replication connections.
set_rules(q{INSERT INTO connguard.rules (rule_name, priority, role_name, mode) VALUES ('vip-exempt', 1, 'vip', 'exempt');
            INSERT INTO connguard.rules (rule_name, priority, max_connections) VALUES ('closed', 10, 0)});
my $plain = login($node, user => 'app', database => 'postgres', application_name => 'any');
is($plain->{detail}, 'rule "closed" allows 0 connections; 0 are in use', 'a cap of 0 refuses a plain role');
ok(login($node, user => $superuser, database => 'postgres')->{admitted}, 'a superuser passes a full cap');
ok(login($node, user => 'vip', database => 'postgres')->{admitted}, 'a role matching an exempt rule passes');
ok(!login($node, user => 'ops', database => 'postgres')->{admitted}, 'ops is refused while not exempt');
$node->append_conf('postgresql.conf', "connguard.exempt_roles = 'ops'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('connguard.exempt_roles') = 'ops'");
ok(login($node, user => 'ops', database => 'postgres')->{admitted}, 'a role in connguard.exempt_roles passes');
my $replication = login($node, user => 'repl', database => 'replication', replication => 'true');
ok($replication->{admitted}, 'a replication connection is never refused')
  or diag("refused: $replication->{message}");
close_all($replication);
# (Superuser sessions are refused from here on: wait on the log, not on a query.)
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "connguard.exempt_superusers = off");
$node->reload;
$node->wait_for_log(qr/parameter "connguard.exempt_superusers" changed to "off"/, $offset);
is(login($node, user => $superuser, database => 'postgres')->{sqlstate}, '53300',
    'with exempt_superusers = off a superuser is refused too');
$offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "connguard.exempt_superusers = on");
$node->reload;
$node->wait_for_log(qr/parameter "connguard.exempt_superusers" changed to "on"/, $offset);

# --- monitor mode admits and logs what it would have refused.
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, max_connections, mode)
            VALUES ('watch', 'watched', 1, 'monitor')});
my @watched = map { login($node, user => 'app', database => 'postgres', application_name => 'watched') } 1 .. 2;
is(scalar(grep { $_->{admitted} } @watched), 2, 'monitor mode admits over the cap');
ok($node->log_contains(qr/pg_connguard: would refuse login: too many connections for rule "watch"/),
    'and logs the login it would have refused');
close_all(@watched);

# --- Sessions matching no rule: connguard.max_connections_per_application, per name;
# connguard.dry_run turns refusals into log lines.
set_rules('');
sub set_conf {
    my ($line, $setting, $value) = @_;
    $node->append_conf('postgresql.conf', $line);
    $node->reload;
    $node->poll_query_until('postgres', "SELECT current_setting('$setting') = '$value'")
      or die "$setting did not become $value";
}
set_conf('connguard.max_connections_per_application = 2', 'connguard.max_connections_per_application', '2');
my @noisy = map { login($node, user => 'app', database => 'postgres', application_name => 'noisy') } 1 .. 3;
is(scalar(grep { $_->{admitted} } @noisy), 2, 'the default cap admits 2 sessions of an unmatched application');
is($noisy[2]{detail}, 'connguard.max_connections_per_application allows 2 connections per application; 2 are in use',
    'the refusal names the setting');
my $quiet = login($node, user => 'app', database => 'postgres', application_name => 'quiet');
ok($quiet->{admitted}, 'another application has its own 2 places');
set_conf('connguard.dry_run = on', 'connguard.dry_run', 'on');
my $over = login($node, user => 'app', database => 'postgres', application_name => 'noisy');
ok($over->{admitted}, 'with dry_run the login over the cap is admitted');
ok($node->log_contains(qr/would refuse login: too many connections for application "noisy"/), 'and logged as would_reject');
close_all(@noisy, $quiet, $over);
set_conf('connguard.dry_run = off', 'connguard.dry_run', 'off');
set_conf('connguard.max_connections_per_application = 0', 'connguard.max_connections_per_application', '0');

# --- application_name from the "options" startup parameter; a startup parameter wins over it.
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per)
            VALUES ('opt', 'via-options', 1, 'application')});
my $held = login($node, user => 'app', database => 'postgres', options => '-c application_name=via-options');
ok($held->{admitted}, 'a login naming its application through options is admitted');
my $again = login($node, user => 'app', database => 'postgres', options => '--application_name=via-options');
is($again->{message}, 'too many connections for application "via-options"',
    'a second one, through --application_name, is counted in the same group');
my $overridden = login($node, user => 'app', database => 'postgres', options => '-c application_name=via-options',
    application_name => 'other');
ok($overridden->{admitted}, 'an application_name startup parameter wins over options');
close_all($held, $overridden);

# --- A session that renames itself into a full group is refused at the SET (53300) and keeps
# its name and place; one that renames into a group with room moves there and takes a place
# in it. (TAP 014 covers renames in depth.)
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per)
            VALUES ('svc-one', 'svc-*', 1, 'application')});
my $holder = login($node, user => 'app', database => 'postgres', application_name => 'svc-x');
my $renamer = login($node, user => 'app', database => 'postgres', application_name => 'batch');
ok($holder->{admitted} && $renamer->{admitted}, 'svc-x holds the only place of its group; batch is elsewhere');
is(simple_query($renamer, "SET application_name = 'svc-x'"), '53300: too many connections for application "svc-x"',
   'the session renaming itself into svc-x is refused with 53300');
is(query_value($renamer, 'SHOW application_name'), 'batch', 'and keeps its name');
ok($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($holder->{pid}, $renamer->{pid})") == 2,
    'both sessions stay');
close $renamer->{socket};

my $mover = login($node, user => 'app', database => 'postgres', application_name => 'batch');
is(simple_query($mover, "SET application_name = 'svc-y'"), undef, 'another session renames into svc-y, which has room');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'svc-y'}),
    'it stays');
my $late;
for (1 .. 40) {
    $late = login($node, user => 'app', database => 'postgres', application_name => 'svc-y');
    last unless $late->{admitted};
    close $late->{socket};
    select(undef, undef, undef, 0.05);
}
is($late->{message}, 'too many connections for application "svc-y"', 'and holds the place of svc-y: a new login there is refused');
close_all($holder, $mover);

# Many sessions renaming at once: each is decided at its SET, none is lost, the worker keeps running.
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per)
            VALUES ('crowd', 'crowd-*', 5, 'application')});
my $worker_before = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'});
my @crowd = map { login($node, user => 'app', database => 'postgres', application_name => 'before') } 1 .. 40;
send_query($crowd[$_], "SET application_name = 'crowd-" . ($_ % 4) . "'") for 0 .. 39;
my @renamed = map { wait_result($_) } @crowd;
is(scalar(grep { !defined } @renamed), 20, '40 sessions renaming at once into 4 groups of 5: 20 renames succeed');
is(scalar(grep { defined && /^53300: / } @renamed), 20, 'and 20 are refused with 53300');
is($node->safe_psql('postgres', q{SELECT string_agg(n::text, ',') FROM (SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'crowd-%' GROUP BY application_name) g}),
    '5,5,5,5', 'each group holds exactly its cap');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE application_name = 'before'}), '20',
    'the refused sessions live on under their old name');
is($node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'}), $worker_before,
    'the worker did not restart');
close_all(@crowd);

# --- "+group" rules: membership is looked up at login, and again by the worker for the
# sessions already there when such a rule arrives.
$node->safe_psql('postgres', q{
CREATE ROLE team NOLOGIN;
CREATE ROLE member1 LOGIN IN ROLE team;
CREATE ROLE member2 LOGIN IN ROLE team;
CREATE ROLE outsider LOGIN;
});
set_rules('');
my $early = login($node, user => 'member1', database => 'postgres', application_name => 'early');
ok($early->{admitted}, 'a member of team logs in while no rule names the group');
set_rules(q{INSERT INTO connguard.rules (rule_name, role_name, max_connections) VALUES ('team-cap', '+team', 2)});
ok($node->poll_query_until('postgres', "SELECT rule_name = 'team-cap' FROM connguard.sessions WHERE pid = $early->{pid}"),
    'the worker moves that session into the new "+team" rule');
my $member2 = login($node, user => 'member2', database => 'postgres');
ok($member2->{admitted}, 'another member takes the second place');
my $member3 = login($node, user => 'member1', database => 'postgres');
is($member3->{message}, 'too many connections for rule "team-cap"', 'a third member is refused');
is($member3->{detail}, 'rule "team-cap" allows 2 connections; 2 are in use', 'and the detail counts both members');
my $outsider = login($node, user => 'outsider', database => 'postgres');
ok($outsider->{admitted}, 'a role outside the group is not counted against it');
is($node->safe_psql('postgres', "SELECT rule_name FROM connguard.sessions WHERE pid = $outsider->{pid}"), '(default)',
    'and matches no rule');
close_all($early, $member2, $outsider);

$node->stop;
done_testing();
