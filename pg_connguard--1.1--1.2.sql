-- pg_connguard 1.1 -> 1.2. A fresh CREATE EXTENSION of 1.2 runs 1.0's script, 1.0 -> 1.1 and
-- then this one, so an updated installation and a fresh one have the same objects (TAP 009
-- compares them). 1.2 is the one version of the workload columns; docs/versions.md lists its
-- whole shape and which parts this build has (the rest is added here, not in a 1.3).
\echo Use "ALTER EXTENSION pg_connguard UPDATE TO '1.2'" to load this file. \quit

-- Per-rule transaction time: a transaction older than max_transaction_time (running or idle)
-- is ended with 25P04, on every major; action 'cancel' cancels a running statement instead.
-- Per-rule statement_timeout and lock_timeout: the sessions' defaults (docs/timeouts.md).
-- max_active and active_wait: running transactions per group, and the queue (docs/workload.md).
ALTER TABLE connguard.rules ADD COLUMN max_transaction_time interval;
ALTER TABLE connguard.rules ADD COLUMN action text NOT NULL DEFAULT 'terminate';
COMMENT ON COLUMN connguard.rules.max_transaction_time IS
    'End a transaction older than this, running or idle (25P04); NULL = connguard.max_transaction_time, 0 = never';
ALTER TABLE connguard.rules ADD COLUMN statement_timeout interval;
ALTER TABLE connguard.rules ADD COLUMN lock_timeout interval;
COMMENT ON COLUMN connguard.rules.statement_timeout IS
    'The sessions'' default statement_timeout from login, as ALTER ROLE ... IN DATABASE ... SET would set it; NULL = the server''s';
COMMENT ON COLUMN connguard.rules.lock_timeout IS
    'The sessions'' default lock_timeout from login, as ALTER ROLE ... IN DATABASE ... SET would set it; NULL = the server''s';
ALTER TABLE connguard.rules ADD COLUMN max_active integer;
ALTER TABLE connguard.rules ADD COLUMN active_wait interval;
COMMENT ON COLUMN connguard.rules.max_active IS
    'Most sessions of the group inside a transaction at once; the others queue FIFO (see active_wait); NULL = no limit';
COMMENT ON COLUMN connguard.rules.active_wait IS
    'How long a statement may queue for a max_active place before it fails with 53000; NULL = connguard.active_wait';
ALTER TABLE connguard.rules ADD COLUMN min_connections integer;
COMMENT ON COLUMN connguard.rules.min_connections IS
    'Places reserved for the rule''s sessions (cap_per = rule): other logins are refused before they would take them; NULL = none';
COMMENT ON COLUMN connguard.rules.action IS
    'terminate or cancel: what max_transaction_time does to a transaction running a statement (an idle one is ended)';

DROP VIEW connguard.active_rules;
DROP FUNCTION connguard._active_rules();
CREATE FUNCTION connguard._active_rules(
    OUT rule_name text,
    OUT priority integer,
    OUT database_name text,
    OUT role_name text,
    OUT application_name text,
    OUT client_addr cidr,
    OUT max_connections integer,
    OUT cap_per text,
    OUT idle_timeout interval,
    OUT idle_in_transaction_timeout interval,
    OUT idle_blocker_timeout interval,
    OUT max_session_age interval,
    OUT mode text,
    OUT pooler boolean,
    OUT max_transaction_time interval,
    OUT action text,
    OUT statement_timeout interval,
    OUT lock_timeout interval,
    OUT max_active integer,
    OUT active_wait interval,
    OUT min_connections integer,
    OUT rule_set_version bigint,
    OUT loaded_at timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_active_rules' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.active_rules AS SELECT * FROM connguard._active_rules();
COMMENT ON VIEW connguard.active_rules IS
    'The rules the server enforces now, in the order they are tried, with the rule-set version and load time';
REVOKE ALL ON FUNCTION connguard._active_rules() FROM PUBLIC;
REVOKE ALL ON connguard.active_rules FROM PUBLIC;
GRANT SELECT ON connguard.active_rules TO pg_monitor;
GRANT EXECUTE ON FUNCTION connguard._active_rules() TO pg_monitor;

-- rule_stats counts sessions ended for their transaction's age, and statements cancelled for
-- it (action 'cancel'; a would-cancel of monitor mode or dry run counts in would_terminate), and
-- max_active's statements queued, those that gave up (past active_wait, or a place-holder
-- waiting for their lock), the time queued and its histogram (statements that waited up to
-- 1 ms, 10 ms, 100 ms, 1 s, 10 s, and longer), and would-waits of monitor mode or dry run;
-- and the login queue: logins that waited for a place (connguard.login_wait), those admitted
-- after waiting, those refused when their wait was over, and those refused at once because
-- connguard.login_queue_size logins of their group already waited; the time logins waited
-- there, and for those admitted after a leaving session gave their group a place back and
-- woke them, the time from that moment to their admission and its histogram (up to 0.1 ms,
-- 0.25 ms, 0.5 ms, 1 ms, 2.5 ms, 10 ms, and longer).
DROP VIEW connguard.rule_stats;
DROP FUNCTION connguard._rule_stats();
CREATE FUNCTION connguard._rule_stats(
    OUT rule_name text, OUT in_force boolean, OUT sessions integer, OUT cap integer, OUT cap_per text,
    OUT peak integer, OUT admitted bigint, OUT rejected bigint, OUT terminated_cap bigint, OUT terminated_idle bigint,
    OUT terminated_idle_in_transaction bigint, OUT terminated_idle_blocker bigint, OUT terminated_age bigint,
    OUT terminated_transaction_time bigint, OUT cancelled_transaction_time bigint,
    OUT active_waits bigint, OUT active_wait_timeouts bigint, OUT active_wait_deadlocks bigint,
    OUT active_wait_time interval, OUT active_wait_histogram bigint[],
    OUT logins_waiting integer, OUT login_waits bigint, OUT login_wait_admitted bigint, OUT login_wait_rejected bigint, OUT login_queue_full bigint,
    OUT login_wait_time interval, OUT login_wake_time interval, OUT login_wake_histogram bigint[],
    OUT would_reject bigint, OUT would_terminate bigint, OUT would_wait bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_rule_stats' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.rule_stats AS SELECT * FROM connguard._rule_stats();
COMMENT ON VIEW connguard.rule_stats IS
    'Per rule (and "(default)" for sessions matching none): sessions now, cap, peak and counts since the last reset_stats()';
REVOKE ALL ON FUNCTION connguard._rule_stats() FROM PUBLIC;
REVOKE ALL ON connguard.rule_stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._rule_stats() TO pg_monitor;
GRANT SELECT ON connguard.rule_stats TO pg_monitor;

-- server_status says why no rules are in force when that is on purpose (the extension or its
-- database is gone): no_rules_reason, NULL while the rules come from connguard.rules.
DROP VIEW connguard.server_status;
DROP FUNCTION connguard._server_status();
CREATE FUNCTION connguard._server_status(
    OUT max_connections integer, OUT reserved_slots integer, OUT usable_slots integer, OUT client_sessions integer,
    OUT active integer, OUT idle integer, OUT idle_in_transaction integer, OUT idle_in_transaction_aborted integer,
    OUT waiting_on_lock integer, OUT utilization_pct double precision, OUT status text, OUT worker_pid integer,
    OUT worker_last_run timestamptz, OUT rules_loaded integer, OUT rule_set_version bigint,
    OUT rules_loaded_at timestamptz, OUT enabled boolean, OUT dry_run boolean, OUT events_dropped bigint,
    OUT stats_reset timestamptz, OUT login_checks bigint, OUT login_check_avg_us double precision,
    OUT reload_pending boolean, OUT no_rules_reason text)
RETURNS record AS 'MODULE_PATHNAME', 'connguard_server_status' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.server_status AS SELECT * FROM connguard._server_status();
COMMENT ON VIEW connguard.server_status IS
    'The server as a whole: usable slots, client sessions by state, utilization and status, worker and rules';
REVOKE ALL ON FUNCTION connguard._server_status() FROM PUBLIC;
REVOKE ALL ON connguard.server_status FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._server_status() TO pg_monitor;
GRANT SELECT ON connguard.server_status TO pg_monitor;

-- pool_advice counts a group's sessions ended for their transaction's age and its logins that
-- waited in the login queue (finding 'logins wait'), and recommends a max_active for a group
-- whose active sessions alone reached the server's cores. Its counts
-- take the words rule_stats, events and metrics() use (rejected, terminated_*, would_reject,
-- would_terminate), as its last columns; the 1.1 words stay beside them until 2.0.
DROP VIEW connguard.pool_advice;
DROP FUNCTION connguard._pool_advice();
CREATE FUNCTION connguard._pool_advice(
    OUT datname text, OUT usename text, OUT application_name text, OUT rule_name text, OUT cap integer,
    OUT sessions integer, OUT peak_sessions_1h integer, OUT peak_sessions integer, OUT peak_active_1h integer,
    OUT peak_active integer, OUT p95_active integer, OUT idle_pct double precision, OUT at_cap_pct double precision,
    OUT logins_per_minute double precision, OUT median_session interval, OUT logins bigint, OUT refused bigint,
    OUT ended_idle bigint, OUT ended_idle_in_transaction bigint, OUT ended_idle_blocker bigint, OUT ended_age bigint,
    OUT ended_cap bigint, OUT ended_closed bigint, OUT ended_transaction_time bigint, OUT would_refuse bigint,
    OUT would_end bigint, OUT login_waits bigint, OUT recommended_cap integer, OUT recommended_max_active integer, OUT findings text[],
    OUT evidence text[],
    OUT since timestamp with time zone)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_pool_advice' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.pool_advice AS
    SELECT *, refused AS rejected, ended_idle AS terminated_idle, ended_idle_in_transaction AS terminated_idle_in_transaction,
           ended_idle_blocker AS terminated_idle_blocker, ended_age AS terminated_age, ended_cap AS terminated_cap,
           ended_closed AS terminated_closed, ended_transaction_time AS terminated_transaction_time,
           would_refuse AS would_reject, would_end AS would_terminate
    FROM connguard._pool_advice() ORDER BY cardinality(findings) DESC, peak_sessions DESC, datname, usename,
        application_name;
COMMENT ON VIEW connguard.pool_advice IS
    'Per (database, role, application_name): figures over time, the rule and cap, a recommended cap and findings with evidence';
REVOKE ALL ON FUNCTION connguard._pool_advice() FROM PUBLIC;
REVOKE ALL ON connguard.pool_advice FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._pool_advice() TO pg_monitor;
GRANT SELECT ON connguard.pool_advice TO pg_monitor;

-- sessions shows whether a session holds a max_active place or queues for one, and since
-- when it queues, and the statement_timeout and lock_timeout its rule gave it; login_queue
-- lists the logins waiting for a place (connguard.login_wait); pool_stats counts both per
-- (database, role, application), a group whose logins all wait included.
DROP VIEW connguard.pool_stats;
DROP VIEW connguard.sessions;
DROP FUNCTION connguard._sessions();
CREATE FUNCTION connguard._sessions(
    OUT pid integer, OUT datname text, OUT usename text, OUT application_name text, OUT client_addr inet,
    OUT backend_start timestamptz, OUT state text, OUT state_since timestamptz, OUT state_duration interval,
    OUT xact_start timestamptz, OUT rule_name text, OUT mode text, OUT limit_reason text, OUT limit_value interval,
    OUT deadline timestamptz, OUT blocking boolean, OUT waiting_on_lock boolean, OUT exempt boolean,
    OUT cap integer, OUT cap_used integer, OUT max_active_state text, OUT queued_since timestamptz,
    OUT statement_timeout interval, OUT lock_timeout interval)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_sessions' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.sessions AS SELECT * FROM connguard._sessions();
COMMENT ON VIEW connguard.sessions IS
    'One row per client session: its state and for how long, its rule, the limit that applies now and when it will be ended';
CREATE FUNCTION connguard._login_queue(
    OUT pid integer, OUT datname text, OUT usename text, OUT application_name text, OUT rule_name text,
    OUT queue_position integer, OUT waiting_since timestamptz, OUT wait_duration interval)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_login_queue' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.login_queue AS
    SELECT * FROM connguard._login_queue() ORDER BY datname, usename, application_name, rule_name, queue_position;
COMMENT ON VIEW connguard.login_queue IS
    'One row per login waiting now for a place in its full cap group (connguard.login_wait), in line order';
CREATE VIEW connguard.pool_stats AS
WITH sessions AS (
    SELECT datname, usename, application_name,
           count(*)::integer AS total,
           (count(*) FILTER (WHERE state IN ('active', 'fastpath function call')))::integer AS active,
           (count(*) FILTER (WHERE state = 'idle'))::integer AS idle,
           (count(*) FILTER (WHERE state = 'idle in transaction'))::integer AS idle_in_transaction,
           (count(*) FILTER (WHERE state = 'idle in transaction (aborted)'))::integer AS idle_in_transaction_aborted,
           (count(*) FILTER (WHERE waiting_on_lock))::integer AS waiting_on_lock,
           max(state_duration) FILTER (WHERE state = 'idle') AS longest_idle,
           pg_catalog.now() - min(xact_start) AS oldest_xact_age,
           min(rule_name) AS rule_name,
           max(cap) AS cap,
           round(100.0 * max(cap_used) / NULLIF(max(cap), 0), 1) AS cap_used_pct,
           (count(*) FILTER (WHERE max_active_state = 'running'))::integer AS running,
           (count(*) FILTER (WHERE max_active_state = 'queued'))::integer AS queued,
           pg_catalog.now() - min(queued_since) AS longest_queued
    FROM connguard.sessions
    GROUP BY datname, usename, application_name),
logins AS (
    SELECT datname, usename, application_name, min(rule_name) AS rule_name,
           count(*)::integer AS logins_waiting, max(wait_duration) AS longest_login_wait
    FROM connguard.login_queue
    GROUP BY datname, usename, application_name)
SELECT datname, usename, application_name,
       coalesce(s.total, 0) AS total, coalesce(s.active, 0) AS active, coalesce(s.idle, 0) AS idle,
       coalesce(s.idle_in_transaction, 0) AS idle_in_transaction,
       coalesce(s.idle_in_transaction_aborted, 0) AS idle_in_transaction_aborted,
       coalesce(s.waiting_on_lock, 0) AS waiting_on_lock,
       s.longest_idle, s.oldest_xact_age, coalesce(s.rule_name, l.rule_name) AS rule_name, s.cap, s.cap_used_pct,
       coalesce(s.running, 0) AS running, coalesce(s.queued, 0) AS queued, s.longest_queued,
       coalesce(l.logins_waiting, 0) AS logins_waiting, l.longest_login_wait
FROM sessions s FULL JOIN logins l USING (datname, usename, application_name);
COMMENT ON VIEW connguard.pool_stats IS
    'Client sessions per (database, role, application): by state, lock waits, longest idle, oldest transaction, cap use, max_active places and queue, logins waiting';
REVOKE ALL ON FUNCTION connguard._sessions(), connguard._login_queue() FROM PUBLIC;
REVOKE ALL ON connguard.sessions, connguard.login_queue, connguard.pool_stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._sessions(), connguard._login_queue() TO pg_monitor;
GRANT SELECT ON connguard.sessions, connguard.login_queue, connguard.pool_stats TO pg_monitor;

-- history samples how many sessions held a max_active place and how many queued, how many
-- logins waited in the login queue, and counts the logins that waited there since the sample
-- before.
DROP VIEW connguard.history;
DROP FUNCTION connguard._history();
CREATE FUNCTION connguard._history(
    OUT sample_time timestamptz, OUT client_sessions integer, OUT active integer, OUT idle integer,
    OUT idle_in_transaction integer, OUT waiting_on_lock integer, OUT utilization_pct double precision,
    OUT connects bigint, OUT disconnects bigint, OUT rejected bigint, OUT terminated bigint,
    OUT running integer, OUT queued integer, OUT logins_waiting integer, OUT login_waits bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_history' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.history AS SELECT * FROM connguard._history() ORDER BY sample_time;
COMMENT ON VIEW connguard.history IS
    'One sample per connguard.history_interval: the pool then, and connects, disconnects, refusals and endings since the sample before';
REVOKE ALL ON FUNCTION connguard._history() FROM PUBLIC;
REVOKE ALL ON connguard.history FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._history() TO pg_monitor;
GRANT SELECT ON connguard.history TO pg_monitor;

-- capacity shows each rule's reservation (min_connections) and their total beside the caps.
DROP VIEW connguard.capacity;
DROP FUNCTION connguard._capacity();
CREATE FUNCTION connguard._capacity(
    OUT rule_name text, OUT mode text, OUT cap_per text, OUT cap integer, OUT scopes_seen integer,
    OUT can_hold bigint, OUT running_total bigint, OUT exhausting boolean, OUT usable_slots integer,
    OUT reserve bigint, OUT overcommitted boolean, OUT min_connections integer, OUT reserved_total bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_capacity' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.capacity AS SELECT * FROM connguard._capacity();
COMMENT ON VIEW connguard.capacity IS
    'Every cap that can be held at once (a cap per scope times the scopes seen) against the usable slots, and the reservations';
REVOKE ALL ON FUNCTION connguard._capacity() FROM PUBLIC;
REVOKE ALL ON connguard.capacity FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._capacity() TO pg_monitor;
GRANT SELECT ON connguard.capacity TO pg_monitor;
