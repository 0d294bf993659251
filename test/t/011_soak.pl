# A soak of logins through every way a session can fail or end: refused by a cap, a wrong
# password, a role's CONNECTION LIMIT, a missing database, a socket closed in the middle of
# its start-up, pg_terminate_backend, ended for idleness, renamed into a full group. After
# it, no place is left held: every count agrees with pg_stat_activity and every cap is fully
# usable. Bounded: CONNGUARD_SOAK_SECONDS (default 20).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

$SIG{PIPE} = 'IGNORE';
my $seconds = $ENV{CONNGUARD_SOAK_SECONDS} // 20;
my $cap = 3;

my $node = PostgreSQL::Test::Cluster->new('soak');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 120
listen_addresses = '127.0.0.1'
password_encryption = 'scram-sha-256'
});
# Role secret logs in over TCP with a password (this line must come before the trust ones).
my $hba = $node->data_dir . '/pg_hba.conf';
my $rules = slurp_file($hba);
open(my $hba_out, '>', $hba) or die $!;
print $hba_out "host all secret 127.0.0.1/32 scram-sha-256\n$rules";
close $hba_out;
$node->start;
$node->safe_psql('postgres', qq{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE ROLE secret LOGIN PASSWORD 'right';
CREATE ROLE limited LOGIN CONNECTION LIMIT 1;
INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per)
VALUES ('capped', 'capped', $cap, 'application');
INSERT INTO connguard.rules (rule_name, application_name, idle_timeout) VALUES ('idlers', 'idler', '300 ms');
SELECT connguard.reload_rules();
});
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');
my $checker = login($node, user => $superuser, database => 'postgres', application_name => 'checker');

my (@live, @idlers, %seen);
sub try_login {
    my (%params) = @_;
    my $session = eval { login($node, user => 'app', database => 'postgres', %params) };
    return undef unless $session;
    ++$seen{ $session->{admitted} ? 'admitted' : ($session->{sqlstate} || 'closed') };
    push @live, $session if $session->{admitted};
    return $session;
}
# Half the time under the cap (so a failure after the place was taken must give it back),
# half the time under no rule.
sub either { return rand() < 0.5 ? 'capped' : 'free' }

sub drop_one {
    return unless @live;
    my $session = splice(@live, int(rand(@live)), 1);
    close $session->{socket};
}

my %done;
my $last_password = 0;
my $end = time() + $seconds;
while (time() < $end) {
    my $what = int(rand(9));
    if ($what <= 1) {
        try_login(application_name => 'capped');                     # refused once the cap is full
    } elsif ($what == 2 && time() - $last_password > 0.2) {
        $last_password = time();
        my ($out, $err) = ('', '');
        {
            local $ENV{PGPASSWORD} = 'wrong';
            IPC::Run::run([ 'psql', '-X', '-h', '127.0.0.1', '-p', $node->port, '-U', 'secret', '-d', 'postgres', '-c', 'SELECT 1' ],
                '>', \$out, '2>', \$err);
        }
        ++$done{password} if $err =~ /password authentication failed/;
    } elsif ($what == 3) {
        my $session = eval { login($node, user => 'limited', database => 'postgres', application_name => either()) };
        if ($session && $session->{admitted}) { push @live, $session } elsif ($session) { ++$done{role_limit} if $session->{sqlstate} eq '53300' }
    } elsif ($what == 4) {
        my $session = eval { login($node, user => 'app', database => 'nope', application_name => either()) };
        ++$done{missing_database} if $session && $session->{sqlstate} eq '3D000';
    } elsif ($what == 5) {
        my $socket = eval { start_login($node, user => 'app', database => 'postgres', application_name => either()) };
        if ($socket) { close $socket; ++$done{closed_mid_startup} }
    } elsif ($what == 6 && @live) {
        my $victim = $live[ int(rand(@live)) ];
        ++$done{terminated} if query_value($checker, "SELECT pg_terminate_backend($victim->{pid})") eq 't';
    } elsif ($what == 7) {
        # Left idle until the worker ends it (300 ms); at most 5 at a time.
        my %ended = map { ($_ => 1) } IO::Select->new(map { $_->{socket} } @idlers)->can_read(0);
        close $_ for keys %ended;
        @idlers = grep { !$ended{ $_->{socket} } } @idlers;
        if (@idlers < 5) {
            my $idler = eval { login($node, user => 'app', database => 'postgres', application_name => 'idler') };
            push @idlers, $idler if $idler && $idler->{admitted};
        }
    } else {
        my ($mover) = grep { !$_->{renamed} } @live;
        if ($mover) {
            $mover->{renamed} = 1;
            my $result = simple_query($mover, rand() < 0.5 ? q{SET application_name = 'capped'} : q{SET application_name = 'elsewhere'});
            ++$done{renamed} unless defined $result;
        }
    }
    drop_one() if @live > 12 || rand() < 0.3;
}
close $_->{socket} for @live, @idlers;
@live = ();
diag(join(', ', map { "$_: $seen{$_}" } sort keys %seen));
diag(join(', ', map { "$_: $done{$_}" } sort keys %done));
ok($seen{admitted} && $seen{53300}, 'the soak had logins admitted and refused by the cap');
ok(($done{$_} // 0) > 0, "the soak went through: $_")
  for qw(password role_limit missing_database closed_mid_startup terminated renamed);
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM connguard.events WHERE event = 'terminated' AND reason = 'idle'}, 'f'),
    'the worker ended idlers meanwhile');

# Everything closed: no client session but the checker, and no place held.
ok($node->poll_query_until('postgres',
    q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name <> 'checker' AND pid <> pg_backend_pid()}),
    'every soaked session is gone');
is($node->safe_psql('postgres', q{SELECT coalesce(sum(sessions), 0) FROM connguard.rule_stats}), '0',
    'no place is left held: rule_stats counts 0 sessions, as pg_stat_activity shows none');
is($node->safe_psql('postgres', q{SELECT count(*) FROM connguard.sessions WHERE application_name NOT IN ('checker', 'psql', '011_soak.pl')}), '0',
    'and connguard.sessions shows none');
my @full = map { login($node, user => 'app', database => 'postgres', application_name => 'capped') } 1 .. $cap + 1;
is(scalar(grep { $_->{admitted} } @full), $cap, "the cap of $cap is fully usable after the soak");
is($full[-1]{sqlstate}, '53300', 'and still exact');
close $_->{socket} for grep { $_->{admitted} } @full;
my $limited = login($node, user => 'limited', database => 'postgres');
ok($limited->{admitted}, 'the role with CONNECTION LIMIT 1 can log in again');
close $limited->{socket} if $limited->{admitted};

done_testing();
