-- Every INSERT and UPDATE of connguard.rules passes the core validator.
\set VERBOSITY terse

-- Good rules are accepted, with the defaults of the contract.
INSERT INTO connguard.rules (rule_name) VALUES ('catch-all');
INSERT INTO connguard.rules (rule_name, priority, database_name, role_name, application_name, client_addr,
                             max_connections, cap_per, idle_timeout, idle_in_transaction_timeout,
                             idle_blocker_timeout, max_session_age, mode, comment)
VALUES ('etl-cap', 10, 'app_*', '+etl_group', 'etl-?', '10.1.0.0/16', 10, 'application', '5 min', '30 s',
        '5 s', '1 hour', 'monitor', 'ETL jobs');
INSERT INTO connguard.rules (rule_name, application_name, client_addr, max_connections, cap_per, mode)
VALUES ('empty-app', '', '2001:db8::/32', 0, 'client_addr', 'exempt'),
       ('ünïcode ✓', NULL, '0.0.0.0/0', 262143, 'role', 'enforce'),
       ('escaped', NULL, '::/0', NULL, 'database', 'enforce');
UPDATE connguard.rules SET application_name = 'literal\*star' WHERE rule_name = 'escaped';
SELECT rule_name, priority, cap_per, mode, enabled FROM connguard.rules ORDER BY priority, rule_name;

-- rule_name
INSERT INTO connguard.rules (rule_name) VALUES ('');
INSERT INTO connguard.rules (rule_name) VALUES (repeat('r', 64));
INSERT INTO connguard.rules (rule_name) VALUES (E'tab\there');
INSERT INTO connguard.rules (rule_name) VALUES (U&'line\2028break');
INSERT INTO connguard.rules (rule_name) VALUES (U&'evil\202Etxt.exe');
INSERT INTO connguard.rules (rule_name) VALUES (U&'next\0085line');
INSERT INTO connguard.rules (rule_name) VALUES ('(default)');
-- priority
INSERT INTO connguard.rules (rule_name, priority) VALUES ('p', NULL);
-- globs
INSERT INTO connguard.rules (rule_name, database_name) VALUES ('g1', '');
INSERT INTO connguard.rules (rule_name, database_name) VALUES ('g2', 'db[0-9]');
INSERT INTO connguard.rules (rule_name, role_name) VALUES ('g3', 'trailing\');
INSERT INTO connguard.rules (rule_name, application_name) VALUES ('g4', repeat('a', 128));
INSERT INTO connguard.rules (rule_name, application_name) VALUES ('g5', E'ctl\x01');
INSERT INTO connguard.rules (rule_name, role_name) VALUES ('g6', '');
-- +group
INSERT INTO connguard.rules (rule_name, role_name) VALUES ('grp1', '+');
INSERT INTO connguard.rules (rule_name, role_name) VALUES ('grp2', '+admins*');
INSERT INTO connguard.rules (rule_name, role_name) VALUES ('grp3', '+' || repeat('x', 64));
-- client_addr (the cidr type itself refuses malformed networks)
INSERT INTO connguard.rules (rule_name, client_addr) VALUES ('c1', '10.0.0.1/8');
INSERT INTO connguard.rules (rule_name, client_addr) VALUES ('c2', '10.0.0.0/33');
INSERT INTO connguard.rules (rule_name, client_addr) VALUES ('c3', 'not-an-address');
-- max_connections
INSERT INTO connguard.rules (rule_name, max_connections) VALUES ('m1', -1);
INSERT INTO connguard.rules (rule_name, max_connections) VALUES ('m2', 262144);
-- cap_per and mode
INSERT INTO connguard.rules (rule_name, cap_per) VALUES ('cp1', 'user');
INSERT INTO connguard.rules (rule_name, cap_per) VALUES ('cp2', NULL);
INSERT INTO connguard.rules (rule_name, mode) VALUES ('mo1', 'block');
INSERT INTO connguard.rules (rule_name, mode) VALUES ('mo2', 'Enforce');
-- intervals
INSERT INTO connguard.rules (rule_name, idle_timeout) VALUES ('i1', '-1 second');
INSERT INTO connguard.rules (rule_name, idle_in_transaction_timeout) VALUES ('i2', '11 years');
INSERT INTO connguard.rules (rule_name, idle_blocker_timeout) VALUES ('i3', '1 day -25 hours');
INSERT INTO connguard.rules (rule_name, max_session_age) VALUES ('i4', '3651 days');
-- enabled
INSERT INTO connguard.rules (rule_name, enabled) VALUES ('e1', NULL);
-- max_transaction_time and action (1.2)
INSERT INTO connguard.rules (rule_name, max_transaction_time) VALUES ('t1', '-1 second');
INSERT INTO connguard.rules (rule_name, max_transaction_time) VALUES ('t2', '11 years');
INSERT INTO connguard.rules (rule_name, action) VALUES ('t3', 'kill');
INSERT INTO connguard.rules (rule_name, action) VALUES ('t4', NULL);
INSERT INTO connguard.rules (rule_name, max_transaction_time, action) VALUES ('t5', '30 seconds', 'cancel');
SELECT rule_name, max_transaction_time, action FROM connguard.rules WHERE rule_name = 't5';
DELETE FROM connguard.rules WHERE rule_name = 't5';
-- statement_timeout and lock_timeout (1.2): PostgreSQL's own ranges, whole milliseconds
INSERT INTO connguard.rules (rule_name, statement_timeout) VALUES ('s1', '-1 ms');
INSERT INTO connguard.rules (rule_name, statement_timeout) VALUES ('s2', '25 days');
INSERT INTO connguard.rules (rule_name, lock_timeout) VALUES ('s3', '0.5 ms');
INSERT INTO connguard.rules (rule_name, statement_timeout, lock_timeout) VALUES ('s4', '30 s', '0');
SELECT rule_name, statement_timeout, lock_timeout FROM connguard.rules WHERE rule_name = 's4';
DELETE FROM connguard.rules WHERE rule_name = 's4';
-- max_active and active_wait (1.2): at least one place; a wait from 0 (fail at once)
INSERT INTO connguard.rules (rule_name, max_active) VALUES ('a1', 0);
INSERT INTO connguard.rules (rule_name, max_active) VALUES ('a2', -3);
INSERT INTO connguard.rules (rule_name, active_wait) VALUES ('a3', '-1 s');
INSERT INTO connguard.rules (rule_name, max_active, active_wait) VALUES ('a4', 4, '0');
SELECT rule_name, max_active, active_wait FROM connguard.rules WHERE rule_name = 'a4';
DELETE FROM connguard.rules WHERE rule_name = 'a4';
-- an UPDATE is validated like an INSERT, and a refused one changes nothing
UPDATE connguard.rules SET max_connections = -5 WHERE rule_name = 'etl-cap';
SELECT max_connections FROM connguard.rules WHERE rule_name = 'etl-cap';
-- duplicate names are refused by the primary key
INSERT INTO connguard.rules (rule_name) VALUES ('catch-all');

-- The table is an extension configuration table: pg_dump dumps its rows.
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'pg_connguard';

DELETE FROM connguard.rules;
