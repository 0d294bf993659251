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
ALTER FUNCTION connguard._server_status() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard.health() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard._events() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard._history() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard.reset_stats() SET search_path = pg_catalog, connguard, pg_temp;
ALTER FUNCTION connguard.metrics() SET search_path = pg_catalog, connguard, pg_temp;
