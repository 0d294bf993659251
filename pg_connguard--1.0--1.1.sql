-- pg_connguard 1.0 -> 1.1. A fresh CREATE EXTENSION of 1.1 runs 1.0's script and then this
-- one, so an updated installation and a fresh one have the same objects (TAP 009 compares them).
\echo Use "ALTER EXTENSION pg_connguard UPDATE TO '1.1'" to load this file. \quit

-- Every function runs with a fixed search_path: an object someone put in a schema that comes
-- first in the caller's search_path (a superuser's included) is never reached from inside
-- pg_connguard. pg_temp is named last so that temporary objects cannot shadow anything.
ALTER FUNCTION connguard._validate_rule() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard._rules_changed() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard.reload_rules() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard._active_rules() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard.close_sessions(text, text, text, interval, boolean) SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard._sessions() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard._rule_stats() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard.health() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard._events() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard._history() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard.reset_stats() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard.metrics() SET search_path = pg_catalog, connguard, pg_temp;

-- server_status says whether a rules reload is pending: requested (a committed change, SIGHUP,
-- reload_rules(), the worker's start) and not yet served by a rules loader, for instance while
-- no background worker slot is free for it.
DROP VIEW connguard.server_status;
DROP FUNCTION connguard._server_status();
CREATE FUNCTION connguard._server_status(
    OUT max_connections integer, OUT reserved_slots integer, OUT usable_slots integer, OUT client_sessions integer,
    OUT active integer, OUT idle integer, OUT idle_in_transaction integer, OUT idle_in_transaction_aborted integer,
    OUT waiting_on_lock integer, OUT utilization_pct double precision, OUT status text, OUT worker_pid integer,
    OUT worker_last_run timestamptz, OUT rules_loaded integer, OUT rule_set_version bigint,
    OUT rules_loaded_at timestamptz, OUT enabled boolean, OUT dry_run boolean, OUT events_dropped bigint,
    OUT stats_reset timestamptz, OUT login_checks bigint, OUT login_check_avg_us double precision,
    OUT reload_pending boolean)
RETURNS record AS 'MODULE_PATHNAME', 'connguard_server_status' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.server_status AS SELECT * FROM connguard._server_status();
COMMENT ON VIEW connguard.server_status IS
    'The server as a whole: usable slots, client sessions by state, utilization and status, worker and rules';
REVOKE ALL ON FUNCTION connguard._server_status() FROM PUBLIC;
REVOKE ALL ON connguard.server_status FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._server_status() TO pg_monitor;
GRANT SELECT ON connguard.server_status TO pg_monitor;

-- close_sessions() becomes a C function over the same session picture and the same decision
-- as the worker: it spares every session the worker spares (an exempt rule, superusers while
-- exempt_superusers is on, roles in exempt_roles read as the worker reads them, sessions not
-- admitted through pg_connguard), re-checks each session right before ending it (same pid, same
-- state since the same moment; one used in between is left alone with action 'changed'), and
-- records a 'terminated' event per ending. Same arguments, defaults, result type and privileges.
CREATE OR REPLACE FUNCTION connguard.close_sessions(
    application_name text DEFAULT NULL,
    usename text DEFAULT NULL,
    state text DEFAULT 'idle',
    older_than interval DEFAULT '0',
    dry_run boolean DEFAULT true)
RETURNS SETOF connguard.closed_session AS 'MODULE_PATHNAME', 'connguard_close_sessions' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
COMMENT ON FUNCTION connguard.close_sessions(text, text, text, interval, boolean) IS
    'Ends client sessions by application, role, state and time in state, sparing exempt ones; dry run by default. '
    'action: would_terminate, terminated, changed (used since listed: left alone) or already_gone';

-- Rules for a pooler's server connections (PgBouncer, pgcat, Odyssey, Pgpool sync
-- application_name on every hand-over): a session admitted under a rule with pooler = true
-- keeps that rule and the group it logged in with whatever name the pooler sets later; such
-- a rename is neither refused nor ended. active_rules shows the column.
ALTER TABLE connguard.rules ADD COLUMN pooler boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN connguard.rules.pooler IS
    'The sessions are a pooler''s server connections: they keep the rule and group they logged in with when renamed';
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

-- connguard.capacity: what the caps in force let be held at once, against the usable slots.
-- One row per rule in force and one, '(default)', for the sessions matching none; capped rows
-- first, largest first, with the running total; `exhausting` marks the largest rows that
-- together can hold every usable slot when the caps are overcommitted. health() says so too.
CREATE FUNCTION connguard._capacity(
    OUT rule_name text, OUT mode text, OUT cap_per text, OUT cap integer, OUT scopes_seen integer,
    OUT can_hold bigint, OUT running_total bigint, OUT exhausting boolean, OUT usable_slots integer,
    OUT reserve bigint, OUT overcommitted boolean)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_capacity' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.capacity AS SELECT * FROM connguard._capacity();
COMMENT ON VIEW connguard.capacity IS
    'Every cap that can be held at once (a cap per scope times the scopes seen) against the usable slots';
REVOKE ALL ON FUNCTION connguard._capacity() FROM PUBLIC;
REVOKE ALL ON connguard.capacity FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._capacity() TO pg_monitor;
GRANT SELECT ON connguard.capacity TO pg_monitor;

-- connguard.pool_advice: per application group (database, role, application_name) its figures
-- over the history window and the last hour, its rule and cap, a recommended cap (the peak of
-- active sessions plus connguard.advice_headroom) and findings with their evidence. The
-- figures are kept for connguard.pool_advice_groups groups; reset_stats() clears them.
CREATE FUNCTION connguard._pool_advice(
    OUT datname text, OUT usename text, OUT application_name text, OUT rule_name text, OUT cap integer,
    OUT sessions integer, OUT peak_sessions_1h integer, OUT peak_sessions integer, OUT peak_active_1h integer,
    OUT peak_active integer, OUT p95_active integer, OUT idle_pct double precision, OUT at_cap_pct double precision,
    OUT logins_per_minute double precision, OUT median_session interval, OUT logins bigint, OUT refused bigint,
    OUT ended_idle bigint, OUT ended_idle_in_transaction bigint, OUT ended_idle_blocker bigint, OUT ended_age bigint,
    OUT ended_cap bigint, OUT ended_closed bigint, OUT would_refuse bigint, OUT would_end bigint,
    OUT recommended_cap integer, OUT findings text[], OUT evidence text[], OUT since timestamp with time zone)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'connguard_pool_advice' LANGUAGE C VOLATILE
SET search_path = pg_catalog, connguard, pg_temp;
CREATE VIEW connguard.pool_advice AS
    SELECT * FROM connguard._pool_advice() ORDER BY cardinality(findings) DESC, peak_sessions DESC, datname, usename,
        application_name;
COMMENT ON VIEW connguard.pool_advice IS
    'Per (database, role, application_name): figures over time, the rule and cap, a recommended cap and findings with evidence';
REVOKE ALL ON FUNCTION connguard._pool_advice() FROM PUBLIC;
REVOKE ALL ON connguard.pool_advice FROM PUBLIC;
GRANT EXECUTE ON FUNCTION connguard._pool_advice() TO pg_monitor;
GRANT SELECT ON connguard.pool_advice TO pg_monitor;
