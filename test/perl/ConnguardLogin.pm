# Logins over the PostgreSQL wire protocol, for tests that need what psql cannot do:
# send exactly the startup parameters we choose (psql always adds its own
# application_name), open hundreds of logins from one process at the same instant, and
# read the SQLSTATE of a refusal.
package ConnguardLogin;

use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use Exporter 'import';

our @EXPORT = qw(start_login finish_login login admitted_login simple_query query_value read_value send_query wait_result wait_closed
                 queue_wait_event wait_queued);

# Opens a connection and sends the startup packet; returns the socket.
# %params: user, database, and any other startup parameters (application_name, options).
# Pass host => '127.0.0.1' to use TCP instead of the node's Unix socket.
sub start_login {
    my ($node, %params) = @_;
    my $host = delete $params{host};
    my $socket = defined $host
      ? IO::Socket::INET->new(PeerAddr => $host, PeerPort => $node->port, Proto => 'tcp')
      : IO::Socket::UNIX->new(Peer => $node->host . '/.s.PGSQL.' . $node->port, Type => SOCK_STREAM());
    die "cannot connect: $!" unless $socket;
    my $body = pack('N', 196608);
    $body .= "$_\0$params{$_}\0" for sort keys %params;
    $body .= "\0";
    print $socket pack('N', length($body) + 4) . $body;
    $socket->flush;
    return $socket;
}

sub read_message {
    my ($socket) = @_;
    my $header = '';
    while (length($header) < 5) {
        my $got = sysread($socket, $header, 5 - length($header), length($header));
        return unless $got;
    }
    my ($type, $length) = unpack('a N', $header);
    my $body = '';
    while (length($body) < $length - 4) {
        my $got = sysread($socket, $body, $length - 4 - length($body), length($body));
        return unless $got;
    }
    return ($type, $body);
}

# Reads the server's answer to a started login. Returns a hash:
#   { admitted => 1, socket => ..., pid => backend pid }  (open until the socket closes)
#   { admitted => 0, sqlstate => '53300', message => ..., detail => ... }
sub finish_login {
    my ($socket) = @_;
    my $pid;
    while (1) {
        my ($type, $body) = read_message($socket);
        return { admitted => 0, sqlstate => '', message => 'connection closed' } unless defined $type;
        if ($type eq 'E') {
            my %fields;
            for my $field (split /\0/, $body) {
                next unless length $field;
                $fields{ substr($field, 0, 1) } = substr($field, 1);
            }
            close $socket;
            return { admitted => 0, sqlstate => $fields{C}, message => $fields{M}, detail => $fields{D} // '',
                     hint => $fields{H} // '' };
        }
        $pid = unpack('N', $body) if $type eq 'K';
        return { admitted => 1, socket => $socket, pid => $pid } if $type eq 'Z';
        die "authentication other than trust is not supported here" if $type eq 'R' && unpack('N', $body) != 0;
    }
}

# Sends a simple query without waiting for its result.
sub send_query {
    my ($session, $sql) = @_;
    my $socket = $session->{socket};
    my $body = "$sql\0";
    print $socket 'Q' . pack('N', length($body) + 4) . $body;
    $socket->flush;
}

# Waits for the result of the query sent last; returns undef on success, or the error's
# "SQLSTATE: message" (also when the server ended the session meanwhile). The error's
# fields (C, M, D, ...) are kept in $session->{error}.
sub wait_result {
    my ($session) = @_;
    my $error;
    delete $session->{error};
    while (1) {
        my ($type, $reply) = read_message($session->{socket});
        return $error // 'connection closed' unless defined $type;
        if ($type eq 'E') {
            my %fields = map { substr($_, 0, 1) => substr($_, 1) } grep { length } split /\0/, $reply;
            $error = "$fields{C}: $fields{M}";
            $session->{error} = \%fields;
        }
        return $error if $type eq 'Z';
    }
}

# Runs a query and returns the first column of its first row (undef for NULL, no row, an
# error, or a session the server ended: then $session->{lost} is set).
sub query_value {
    my ($session, $sql) = @_;
    send_query($session, $sql);
    return read_value($session);
}

# The same for a query already sent with send_query.
sub read_value {
    my ($session) = @_;
    my ($value, $failed);
    while (1) {
        my ($type, $reply) = read_message($session->{socket});
        unless (defined $type) {
            $session->{lost} = 1;
            return undef;
        }
        $failed = 1 if $type eq 'E';
        if ($type eq 'D' && !defined $value) {
            my ($columns, $length) = unpack('n N', $reply);
            $value = substr($reply, 6, $length) if $columns > 0 && $length != 0xFFFFFFFF;
        }
        return $failed ? undef : $value if $type eq 'Z';
    }
}

sub simple_query {
    my ($session, $sql) = @_;
    send_query($session, $sql);
    return wait_result($session);
}

# Waits (up to $timeout seconds) for the server to end idle sessions. Returns a hash
# pid => { at => time the end was seen, sqlstate, message and detail of the FATAL }.
sub wait_closed {
    my ($sessions, $timeout) = @_;
    my %by_socket = map { ($_->{socket} => $_) } @$sessions;
    my $select = IO::Select->new(map { $_->{socket} } @$sessions);
    my %closed;
    my $give_up = time() + $timeout;
    while ($select->count && time() < $give_up) {
        for my $socket ($select->can_read($give_up - time())) {
            my $session = $by_socket{$socket};
            my ($type, $body) = read_message($socket);
            next if defined $type && $type ne 'E';
            my %fields;
            %fields = map { substr($_, 0, 1) => substr($_, 1) } grep { length } split /\0/, $body if defined $type;
            $closed{ $session->{pid} } = { at => time(), sqlstate => $fields{C} // '', message => $fields{M},
                                          detail => $fields{D} };
            $select->remove($socket);
        }
    }
    return \%closed;
}

sub login {
    my ($node, %params) = @_;
    return finish_login(start_login($node, %params));
}

# A login that must be admitted (as role app to database postgres unless %params say
# otherwise); dies with the server's message if it is refused.
sub admitted_login {
    my ($node, %params) = @_;
    my $session = login($node, user => 'app', database => 'postgres', %params);
    die "login refused: $session->{message}" unless $session->{admitted};
    return $session;
}

# The wait event of a statement queued for a max_active place on $node: pg_connguard's own
# from PostgreSQL 17 on, "Extension" before.
sub queue_wait_event {
    my ($node) = @_;
    my $major = $node->safe_psql('postgres', q{SELECT current_setting('server_version_num')::int / 10000});
    return $major >= 17 ? 'ConnguardMaxActiveQueue' : 'Extension';
}

# Waits (up to 10 s) until session $pid on $node is queued for a max_active place; true if it was.
sub wait_queued {
    my ($node, $pid) = @_;
    my $event = queue_wait_event($node);
    for (1 .. 200) {
        return 1 if $node->safe_psql('postgres',
            "SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity WHERE pid = $pid") eq "Extension:$event";
        sleep 0.05;
    }
    return 0;
}

1;
