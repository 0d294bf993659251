-- connguard.active_rules shows the compiled rule set the server enforces now.
\set VERBOSITY terse

SELECT connguard.reload_rules();
SELECT count(*) FROM connguard.active_rules;

INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections, cap_per, idle_timeout,
                             idle_in_transaction_timeout, max_session_age)
VALUES ('b-second', 20, 'svc-*', 3, 'application', '90 s', '2 days', '1 mon'),
       ('a-second', 20, NULL, NULL, 'rule', NULL, '0', NULL),
       ('first', 5, 'etl', 10, 'rule', '5 min', NULL, NULL),
       ('off', 1, NULL, 0, 'rule', NULL, NULL, NULL);
UPDATE connguard.rules SET enabled = false WHERE rule_name = 'off';
INSERT INTO connguard.rules (rule_name, priority, role_name, client_addr, mode)
VALUES ('net', 30, '+ops', '192.168.0.0/23', 'exempt');

-- reload_rules() returns the number of enabled rules now in force.
SELECT connguard.reload_rules();
-- Enabled rules only, in the order they are tried: priority, then rule_name.
SELECT rule_name, priority, database_name, role_name, application_name, client_addr, max_connections, cap_per,
       idle_timeout, idle_in_transaction_timeout, max_session_age, mode
FROM connguard.active_rules;

-- Every row carries the same rule-set version and load time; a reload makes a new version.
SELECT count(DISTINCT rule_set_version) AS versions, count(DISTINCT loaded_at) AS load_times,
       bool_and(loaded_at <= now()) AS loaded_in_the_past
FROM connguard.active_rules;
SELECT max(rule_set_version) AS version_before FROM connguard.active_rules \gset
SELECT connguard.reload_rules();
SELECT max(rule_set_version) = :version_before + 1 AS new_version FROM connguard.active_rules;

-- Privileges: a plain role can neither reload nor read; pg_monitor members can read.
CREATE ROLE connguard_plain;
CREATE ROLE connguard_watcher IN ROLE pg_monitor;
SET ROLE connguard_plain;
SELECT connguard.reload_rules();
SELECT count(*) FROM connguard.active_rules;
INSERT INTO connguard.rules (rule_name) VALUES ('sneaky');
RESET ROLE;
SET ROLE connguard_watcher;
SELECT count(*) FROM connguard.active_rules;
SELECT connguard.reload_rules();
RESET ROLE;
DROP ROLE connguard_plain;
DROP ROLE connguard_watcher;

DELETE FROM connguard.rules;
SELECT connguard.reload_rules();
SELECT count(*) FROM connguard.active_rules;

-- The installed version, and every function of the extension with a pinned search_path.
SELECT extversion FROM pg_extension WHERE extname = 'pg_connguard';
SELECT p.oid::regprocedure AS without_pinned_search_path
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_connguard'
WHERE NOT EXISTS (SELECT FROM unnest(p.proconfig) AS setting WHERE setting LIKE 'search_path=%');
SELECT count(*) AS functions_with_pinned_search_path
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_connguard'
WHERE p.proconfig @> ARRAY['search_path=pg_catalog, connguard, pg_temp'];
