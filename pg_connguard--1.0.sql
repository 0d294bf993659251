-- pg_connguard 1.0
\echo Use "CREATE EXTENSION pg_connguard" to load this file. \quit

-- Rules: read by the background worker from the database named by connguard.database.
CREATE TABLE connguard.rules (
    rule_name                   text PRIMARY KEY,
    priority                    integer NOT NULL DEFAULT 100,
    database_name               text,
    role_name                   text,
    application_name            text,
    client_addr                 cidr,
    max_connections             integer,
    cap_per                     text NOT NULL DEFAULT 'rule',
    idle_timeout                interval,
    idle_in_transaction_timeout interval,
    idle_blocker_timeout        interval,
    max_session_age             interval,
    mode                        text NOT NULL DEFAULT 'enforce',
    enabled                     boolean NOT NULL DEFAULT true,
    comment                     text
);
COMMENT ON TABLE connguard.rules IS
    'pg_connguard rules: a session is governed by the first matching enabled rule in (priority, rule_name) order';
SELECT pg_catalog.pg_extension_config_dump('connguard.rules', '');
REVOKE ALL ON connguard.rules FROM PUBLIC;

-- Every INSERT and UPDATE goes through the same validator the server uses to compile rules.
CREATE FUNCTION connguard._validate_rule() RETURNS trigger
    AS 'MODULE_PATHNAME', 'connguard_validate_rule' LANGUAGE C;
CREATE TRIGGER validate_rule BEFORE INSERT OR UPDATE ON connguard.rules
    FOR EACH ROW EXECUTE FUNCTION connguard._validate_rule();

-- A committed change wakes the worker, which reloads the rules within a second.
CREATE FUNCTION connguard._rules_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'connguard_rules_changed' LANGUAGE C;
CREATE TRIGGER reload_after_commit AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON connguard.rules
    FOR EACH STATEMENT EXECUTE FUNCTION connguard._rules_changed();

CREATE FUNCTION connguard.reload_rules() RETURNS integer
    AS 'MODULE_PATHNAME', 'connguard_reload_rules' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION connguard.reload_rules() IS
    'Reloads connguard.rules now and returns the number of enabled rules in force';
REVOKE ALL ON FUNCTION connguard.reload_rules() FROM PUBLIC;

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
    OUT rule_set_version bigint,
    OUT loaded_at timestamptz)
RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'connguard_active_rules' LANGUAGE C VOLATILE;

CREATE VIEW connguard.active_rules AS SELECT * FROM connguard._active_rules();
COMMENT ON VIEW connguard.active_rules IS
    'The rules the server enforces now, in the order they are tried, with the rule-set version and load time';
REVOKE ALL ON FUNCTION connguard._active_rules() FROM PUBLIC;
REVOKE ALL ON connguard.active_rules FROM PUBLIC;
GRANT USAGE ON SCHEMA connguard TO pg_monitor;
GRANT SELECT ON connguard.active_rules TO pg_monitor;
GRANT EXECUTE ON FUNCTION connguard._active_rules() TO pg_monitor;

-- The DBA's manual clean-up: ends (or, by default, only lists) client sessions by
-- application, role, state and time in that state. Superusers (while
-- connguard.exempt_superusers is on), roles in connguard.exempt_roles and this session
-- itself are never ended.
CREATE TYPE connguard.closed_session AS (
    pid              integer,
    datname          name,
    usename          name,
    application_name text,
    client_addr      inet,
    state            text,
    state_duration   interval,
    action           text          -- 'terminated', 'would_terminate' or 'already_gone'
);

CREATE FUNCTION connguard.close_sessions(
    application_name text DEFAULT NULL,
    usename text DEFAULT NULL,
    state text DEFAULT 'idle',
    older_than interval DEFAULT '0',
    dry_run boolean DEFAULT true)
RETURNS SETOF connguard.closed_session
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    victim connguard.closed_session;
    exempt_roles text[] := pg_catalog.string_to_array(
        pg_catalog.replace(COALESCE(pg_catalog.current_setting('connguard.exempt_roles', true), ''), ' ', ''), ',');
    exempt_superusers boolean := COALESCE(
        pg_catalog.current_setting('connguard.exempt_superusers', true), 'on')::boolean;
BEGIN
    IF close_sessions.state IS NOT NULL AND close_sessions.state NOT IN
        ('idle', 'idle in transaction', 'idle in transaction (aborted)', 'active') THEN
        RAISE EXCEPTION 'invalid state "%"', close_sessions.state
            USING HINT = 'Use idle, idle in transaction, idle in transaction (aborted), active, or NULL for any.';
    END IF;
    IF close_sessions.older_than IS NULL OR close_sessions.older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be an interval of 0 or more';
    END IF;
    FOR victim IN
        SELECT a.pid, a.datname, a.usename, a.application_name, a.client_addr, a.state,
               pg_catalog.clock_timestamp() - a.state_change, NULL::text
        FROM pg_catalog.pg_stat_activity a
        JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
        WHERE a.backend_type = 'client backend'
          AND a.pid <> pg_catalog.pg_backend_pid()
          AND (close_sessions.application_name IS NULL OR a.application_name = close_sessions.application_name)
          AND (close_sessions.usename IS NULL OR a.usename = close_sessions.usename)
          AND (close_sessions.state IS NULL OR a.state = close_sessions.state)
          AND pg_catalog.clock_timestamp() - a.state_change >= close_sessions.older_than
          AND NOT (r.rolsuper AND exempt_superusers)
          AND NOT (r.rolname = ANY (exempt_roles))
        ORDER BY a.state_change
    LOOP
        IF close_sessions.dry_run THEN
            victim.action := 'would_terminate';
        ELSIF pg_catalog.pg_terminate_backend(victim.pid) THEN
            victim.action := 'terminated';
            RAISE LOG 'pg_connguard: close_sessions ended session % (%, %, %, % for %)', victim.pid,
                victim.datname, victim.usename, victim.application_name, victim.state, victim.state_duration;
        ELSE
            victim.action := 'already_gone';
        END IF;
        RETURN NEXT victim;
    END LOOP;
END
$$;
COMMENT ON FUNCTION connguard.close_sessions(text, text, text, interval, boolean) IS
    'Ends client sessions by application, role, state and time in state; dry run by default';
REVOKE ALL ON FUNCTION connguard.close_sessions(text, text, text, interval, boolean) FROM PUBLIC;

-- Observability. Each view reads pg_connguard's shared memory and PostgreSQL's backend
-- status (the source of pg_stat_activity). Readable by pg_monitor; like
-- pg_stat_activity, client addresses of other roles' sessions are shown only to
-- pg_read_all_stats members.
CREATE FUNCTION connguard._sessions(
    OUT pid integer, OUT datname text, OUT usename text, OUT application_name text, OUT client_addr inet,
    OUT backend_start timestamptz, OUT state text, OUT state_since timestamptz, OUT state_duration interval,
    OUT xact_start timestamptz, OUT rule_name text, OUT mode text, OUT limit_reason text, OUT limit_value interval,
    OUT deadline timestamptz, OUT blocking boolean, OUT waiting_on_lock boolean, OUT exempt boolean,
    OUT cap integer, OUT cap_used integer)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_sessions' LANGUAGE C VOLATILE;

CREATE VIEW connguard.sessions AS SELECT * FROM connguard._sessions();
COMMENT ON VIEW connguard.sessions IS
    'One row per client session: its state and for how long, its rule, the limit that applies now and when it will be ended';

CREATE VIEW connguard.pool_stats AS
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
       round(100.0 * max(cap_used) / NULLIF(max(cap), 0), 1) AS cap_used_pct
FROM connguard.sessions
GROUP BY datname, usename, application_name;
COMMENT ON VIEW connguard.pool_stats IS
    'Client sessions per (database, role, application): by state, lock waits, longest idle, oldest transaction, cap use';

CREATE FUNCTION connguard._rule_stats(
    OUT rule_name text, OUT in_force boolean, OUT sessions integer, OUT cap integer, OUT cap_per text,
    OUT peak integer, OUT admitted bigint, OUT rejected bigint, OUT terminated_cap bigint, OUT terminated_idle bigint,
    OUT terminated_idle_in_transaction bigint, OUT terminated_idle_blocker bigint, OUT terminated_age bigint,
    OUT would_reject bigint, OUT would_terminate bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_rule_stats' LANGUAGE C VOLATILE;
CREATE VIEW connguard.rule_stats AS SELECT * FROM connguard._rule_stats();
COMMENT ON VIEW connguard.rule_stats IS
    'Per rule (and "(default)" for sessions matching none): sessions now, cap, peak and counts since the last reset_stats()';

CREATE FUNCTION connguard._server_status(
    OUT max_connections integer, OUT reserved_slots integer, OUT usable_slots integer, OUT client_sessions integer,
    OUT active integer, OUT idle integer, OUT idle_in_transaction integer, OUT idle_in_transaction_aborted integer,
    OUT waiting_on_lock integer, OUT utilization_pct double precision, OUT status text, OUT worker_pid integer,
    OUT worker_last_run timestamptz, OUT rules_loaded integer, OUT rule_set_version bigint,
    OUT rules_loaded_at timestamptz, OUT enabled boolean, OUT dry_run boolean, OUT events_dropped bigint,
    OUT stats_reset timestamptz, OUT login_checks bigint, OUT login_check_avg_us double precision)
RETURNS record AS 'MODULE_PATHNAME', 'connguard_server_status' LANGUAGE C VOLATILE;
CREATE VIEW connguard.server_status AS SELECT * FROM connguard._server_status();
COMMENT ON VIEW connguard.server_status IS
    'The server as a whole: usable slots, client sessions by state, utilization and status, worker and rules';

CREATE FUNCTION connguard.health(OUT status text, OUT utilization_pct double precision, OUT message text)
RETURNS record AS 'MODULE_PATHNAME', 'connguard_health' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION connguard.health() IS
    'ok / warning / critical by connguard.warn_utilization and critical_utilization, for load balancer checks';

CREATE FUNCTION connguard._events(
    OUT event_time timestamptz, OUT event text, OUT pid integer, OUT datname text, OUT usename text,
    OUT application_name text, OUT client_addr inet, OUT rule_name text, OUT reason text, OUT detail text)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_events' LANGUAGE C VOLATILE;
CREATE VIEW connguard.events AS SELECT * FROM connguard._events();
COMMENT ON VIEW connguard.events IS
    'What pg_connguard refused and ended (or would have), newest first; the oldest are dropped past connguard.event_log_size';

CREATE FUNCTION connguard._history(
    OUT sample_time timestamptz, OUT client_sessions integer, OUT active integer, OUT idle integer,
    OUT idle_in_transaction integer, OUT waiting_on_lock integer, OUT utilization_pct double precision,
    OUT connects bigint, OUT disconnects bigint, OUT rejected bigint, OUT terminated bigint)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_history' LANGUAGE C VOLATILE;
CREATE VIEW connguard.history AS SELECT * FROM connguard._history() ORDER BY sample_time;
COMMENT ON VIEW connguard.history IS
    'One sample per connguard.history_interval: the pool then, and connects, disconnects, refusals and endings since the sample before';

CREATE FUNCTION connguard.reset_stats() RETURNS void
    AS 'MODULE_PATHNAME', 'connguard_reset_stats' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION connguard.reset_stats() IS 'Zeroes the counters of rule_stats and the login check timing of server_status (live session counts stay)';

REVOKE ALL ON FUNCTION connguard._sessions(), connguard._rule_stats(), connguard._server_status(),
    connguard.health(), connguard._events(), connguard._history(), connguard.reset_stats() FROM PUBLIC;
REVOKE ALL ON connguard.sessions, connguard.pool_stats, connguard.rule_stats, connguard.server_status,
    connguard.events, connguard.history FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._sessions(), connguard._rule_stats(), connguard._server_status(),
    connguard.health(), connguard._events(), connguard._history() TO pg_monitor;
GRANT SELECT ON connguard.sessions, connguard.pool_stats, connguard.rule_stats, connguard.server_status,
    connguard.events, connguard.history TO pg_monitor;

CREATE FUNCTION connguard.metrics() RETURNS text
    AS 'MODULE_PATHNAME', 'connguard_metrics' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION connguard.metrics() IS 'The figures of the views in Prometheus text exposition format';
REVOKE ALL ON FUNCTION connguard.metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard.metrics() TO pg_monitor;
