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
