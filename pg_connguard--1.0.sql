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
