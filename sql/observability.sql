-- The observability surface: every view's columns and types, health and metrics, and
-- who may read or act.
\set VERBOSITY terse

SELECT table_name, string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) AS columns
FROM information_schema.columns
WHERE table_schema = 'connguard' AND table_name IN
      ('sessions', 'pool_stats', 'rule_stats', 'server_status', 'events', 'history', 'active_rules', 'capacity',
       'pool_advice', 'login_queue')
GROUP BY table_name ORDER BY table_name;

SELECT pg_catalog.pg_get_function_result('connguard.health()'::regprocedure) AS health,
       pg_catalog.pg_get_function_arguments('connguard.close_sessions(text, text, text, interval, boolean)'::regprocedure)
           AS close_sessions_arguments;

-- One client session (this one), a known server shape.
SELECT count(*) AS sessions, bool_and(pid = pg_backend_pid()) AS only_me FROM connguard.sessions;
SELECT client_sessions >= 1 AS counted, usable_slots = max_connections - reserved_slots AS usable,
       status, worker_pid IS NOT NULL AS worker, dry_run
FROM connguard.server_status;
SELECT status, utilization_pct > 0 AS some_use, message LIKE '% of % usable connection slots in use (%' AS message
FROM connguard.health();
SELECT rule_name, in_force, cap FROM connguard.rule_stats;
SELECT metrics LIKE '# HELP connguard_max_connections %' AS starts_with_help,
       metrics LIKE '%# TYPE connguard_rule_rejected_total counter%' AS has_counters
FROM connguard.metrics() AS metrics;

-- Privileges: a plain role reads nothing and changes nothing; pg_monitor reads but
-- cannot reset, reload or close sessions.
CREATE ROLE connguard_nobody;
CREATE ROLE connguard_monitor IN ROLE pg_monitor;
SET ROLE connguard_nobody;
SELECT count(*) FROM connguard.sessions;
SELECT count(*) FROM connguard.pool_stats;
SELECT count(*) FROM connguard.capacity;
SELECT count(*) FROM connguard.pool_advice;
SELECT count(*) FROM connguard.login_queue;
SELECT * FROM connguard.health();
SELECT connguard.metrics();
SELECT connguard.reset_stats();
RESET ROLE;
SET ROLE connguard_monitor;
SELECT count(*) >= 1 AS sessions FROM connguard.sessions;
SELECT count(*) >= 1 AS pools FROM connguard.pool_stats;
SELECT count(*) >= 1 AS rules FROM connguard.rule_stats;
SELECT count(*) = 1 AS status FROM connguard.server_status;
SELECT count(*) >= 0 AS events FROM connguard.events;
SELECT count(*) >= 0 AS history FROM connguard.history;
SELECT count(*) >= 1 AS capacity FROM connguard.capacity;
SELECT count(*) >= 0 AS pool_advice FROM connguard.pool_advice;
SELECT count(*) = 0 AS nobody_waits_to_log_in FROM connguard.login_queue;
SELECT logins_waiting = 0 AND longest_login_wait IS NULL AS no_login_waits FROM connguard.pool_stats;
SELECT status IS NOT NULL AS health FROM connguard.health();
SELECT length(connguard.metrics()) > 0 AS metrics;
SELECT connguard.reset_stats();
SELECT connguard.reload_rules();
SELECT * FROM connguard.close_sessions();
RESET ROLE;
DROP ROLE connguard_nobody;
DROP ROLE connguard_monitor;
