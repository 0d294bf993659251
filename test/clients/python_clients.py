#!/usr/bin/python3
"""Real Python clients against a server with pg_connguard: SQLAlchemy's QueuePool (psycopg2),
psycopg 3 with psycopg_pool, Django, and psycopg2's own pool. Each client runs three
scenarios, with the settings the README recommends and with its defaults:

  idle   a pool of 2 idles past the rule's idle_timeout (1 s), then serves 4 operations;
  leak   one connection leaves a transaction open past idle_in_transaction_timeout (1 s),
         another commits a row; then the pool serves 4 operations;
  cap    5 workers share the pool under a rule capping the application at 3 sessions;
  active 4 workers share a pool of 4 under max_active = 1 (they queue, no error), then a
         statement queued past active_wait (0.3 s) gets 53000 and the pool goes on;
  limits a statement running past a rule's max_transaction_time (1 s) ends its session
         (25P04); under action = 'cancel' it is cancelled (57014) and the session lives; a
         rule's statement_timeout (0.3 s) cancels a statement (57014); after each the pool
         serves 3 statements.

Prints one JSON line per client, scenario and setting: the errors the application code saw
(the goal with recommended settings is 0), the first error's SQLSTATE as the client exposes it
(None when the driver does not) and message, and what the server recorded.
Usage: python_clients.py PORT CLIENT..."""
import json
import sys
import threading
import time

PORT = int(sys.argv[1])
DSN = f"host=127.0.0.1 port={PORT} dbname=postgres user=app"
ADMIN_DSN = f"host=127.0.0.1 port={PORT} dbname=postgres user=postgres"
IDLE_WAIT = 2.5


def admin(sql):
    import psycopg2
    with psycopg2.connect(ADMIN_DSN) as conn, conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    conn.close()
    return row[0] if row else None


def sqlstate_of(error):
    for attr in ("pgcode", "sqlstate"):
        value = getattr(error, attr, None)
        if value:
            return value
    # SQLAlchemy keeps the driver's error as .orig, Django as the cause of its own.
    for inner in (getattr(error, "orig", None), getattr(error, "__cause__", None)):
        if inner is not None and inner is not error:
            return sqlstate_of(inner)
    return None


class Errors:
    def __init__(self):
        self.count = 0
        self.first = None
        self.lock = threading.Lock()

    def add(self, error):
        with self.lock:
            self.count += 1
            if self.first is None:
                self.first = {"sqlstate": sqlstate_of(error), "message": " ".join(str(error).split())[:240]}


def in_threads(n, fn):
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def in_workers(client, n, sql, errors):
    """n threads each run sql three times through the client's pool."""
    def worker(_):
        for _ in range(3):
            try:
                client.run(sql)
            except Exception as e:  # what the application code sees
                errors.add(e)
    in_threads(n, worker)


class PeakSampler:
    """Samples the sessions of an application every 10 ms."""

    def __init__(self, app):
        import psycopg2
        self.conn = psycopg2.connect(ADMIN_DSN)
        self.conn.autocommit = True
        self.app, self.peak, self.running = app, 0, True
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        cur = self.conn.cursor()
        while self.running:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (self.app,))
            self.peak = max(self.peak, cur.fetchone()[0])
            time.sleep(0.01)

    def stop(self):
        self.running = False
        self.thread.join()
        self.conn.close()
        return self.peak


# ---- clients: each makes a pool for an application name and runs statements through it


class SqlAlchemyClient:
    name = "sqlalchemy"

    def __init__(self, app, size, recommended):
        import sqlalchemy
        self.sa = sqlalchemy
        url = f"postgresql+psycopg2://app@127.0.0.1:{PORT}/postgres"
        if recommended:  # pool_pre_ping: a dead connection is replaced before use; pool_size at or below the cap
            self.engine = sqlalchemy.create_engine(url, pool_size=size, max_overflow=0, pool_pre_ping=True,
                                                   connect_args={"application_name": app})
        else:
            self.engine = sqlalchemy.create_engine(url, connect_args={"application_name": app})

    def run(self, sql):
        with self.engine.connect() as conn:
            return conn.execute(self.sa.text(sql)).scalar()

    def leak(self, insert, seconds):
        conn = self.engine.connect()
        try:
            trans = conn.begin()
            conn.execute(self.sa.text(insert))
            time.sleep(seconds)
            trans.commit()
        finally:
            conn.close()

    def close(self):
        self.engine.dispose()


class PsycopgPoolClient:
    name = "psycopg_pool"

    def __init__(self, app, size, recommended):
        import psycopg_pool
        self.pool = psycopg_pool.ConnectionPool(f"{DSN} application_name={app}", min_size=size if recommended else 4,
                                                max_size=size if recommended else None)
        self.checker = None
        if recommended:
            # psycopg_pool 3.1 has no check-on-borrow (3.2: check=ConnectionPool.check_connection):
            # the documented way is pool.check() from a periodic task, more often than idle_timeout.
            self.running = True
            self.checker = threading.Thread(target=self.check_loop)
            self.checker.start()

    def check_loop(self):
        while self.running:
            self.pool.check()
            time.sleep(0.3)

    def run(self, sql):
        with self.pool.connection() as conn:
            return conn.execute(sql).fetchone()[0]

    def leak(self, insert, seconds):
        with self.pool.connection() as conn:
            conn.execute(insert)  # psycopg 3 opens a transaction
            time.sleep(seconds)
            conn.commit()

    def close(self):
        if self.checker:
            self.running = False
            self.checker.join()
        self.pool.close()


class Psycopg2PoolClient:
    name = "psycopg2_pool"

    def __init__(self, app, size, recommended):
        from psycopg2 import pool
        self.recommended = recommended
        self.pool = pool.ThreadedConnectionPool(1, size if recommended else 5, f"{DSN} application_name={app}")
        # Its pool neither waits for a free connection nor checks one: the recommended wrapper
        # does both (a semaphore of the pool's size, a ping on borrow).
        self.slots = threading.BoundedSemaphore(size)

    def borrow(self):
        conn = self.pool.getconn()
        if self.recommended:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.rollback()
            except Exception:
                self.pool.putconn(conn, close=True)
                conn = self.pool.getconn()
        return conn

    def run(self, sql):
        if self.recommended:
            self.slots.acquire()
        try:
            conn = self.borrow()
            broken = False
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    value = cur.fetchone()[0]
                conn.commit()
                return value
            except Exception:
                broken = conn.closed != 0
                raise
            finally:
                self.pool.putconn(conn, close=broken)
        finally:
            if self.recommended:
                self.slots.release()

    def leak(self, insert, seconds):
        conn = self.borrow()
        try:
            with conn.cursor() as cur:
                cur.execute(insert)
            time.sleep(seconds)
            conn.commit()
        finally:
            self.pool.putconn(conn, close=conn.closed != 0)

    def close(self):
        self.pool.closeall()


class DjangoClient:
    name = "django"
    configured = False

    def __init__(self, app, size, recommended):
        import django
        from django.conf import settings
        from django.db import connections
        # Django has no pool: each thread holds its own connection. Recommended:
        # CONN_MAX_AGE below idle_timeout (0, Django's default, closes it after each request)
        # and no more worker threads than the cap. "defaults" here is the common
        # CONN_MAX_AGE = None (persistent connections) with as many threads as work.
        db = {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "app", "HOST": "127.0.0.1",
              "PORT": str(PORT), "OPTIONS": {"application_name": app}, "CONN_MAX_AGE": 0 if recommended else None}
        if not DjangoClient.configured:
            settings.configure(DATABASES={"default": db}, USE_TZ=True)
            django.setup()
            DjangoClient.configured = True
        else:
            connections.close_all()
            connections.settings["default"].update(db)
            connections.settings["default"]["OPTIONS"] = db["OPTIONS"]
        self.threads = threading.BoundedSemaphore(size if recommended else 100)

    def request(self, fn):
        from django.db import close_old_connections
        with self.threads:
            close_old_connections()  # what Django does at each request's start and end
            try:
                return fn()
            finally:
                close_old_connections()

    def run(self, sql):
        from django.db import connection

        def query():
            with connection.cursor() as cur:
                cur.execute(sql)
                return cur.fetchone()[0]
        return self.request(query)

    def leak(self, insert, seconds):
        from django.db import connection, transaction

        def leaky():
            with transaction.atomic():
                with connection.cursor() as cur:
                    cur.execute(insert)
                time.sleep(seconds)
        return self.request(leaky)

    def close(self):
        from django.db import connections
        connections.close_all()


CLIENTS = {c.name: c for c in (SqlAlchemyClient, PsycopgPoolClient, Psycopg2PoolClient, DjangoClient)}


# ---- scenarios


def idle(client_class, recommended):
    app = f"{client_class.name}-idle"
    client = client_class(app, 2, recommended)
    errors = Errors()
    client.run("SELECT 1")  # this thread's own session (Django keeps one per thread)
    in_threads(2, lambda i: client.run("SELECT pg_sleep(0.2)"))  # two sessions in the pool
    time.sleep(IDLE_WAIT)
    for _ in range(4):
        try:
            client.run("SELECT 1")
        except Exception as e:  # what the application code sees
            errors.add(e)
    client.close()
    ended = admin(f"SELECT count(*) FROM connguard.events WHERE event = 'terminated' AND reason = 'idle' AND application_name = '{app}'")
    return errors, {"sessions_ended_idle": ended}


def leak(client_class, recommended):
    app = f"{client_class.name}-leak"
    client = client_class(app, 2, recommended)
    errors = Errors()
    leaker = Errors()
    tag = f"{client_class.name}-{'rec' if recommended else 'def'}"
    client.run(f"INSERT INTO ledger VALUES ('kept-{tag}') RETURNING 1")
    try:
        client.leak(f"INSERT INTO ledger VALUES ('leaked-{tag}')", IDLE_WAIT)
    except Exception as e:  # the leaking code path itself: its transaction was rolled back
        leaker.add(e)
    for _ in range(4):
        try:
            client.run("SELECT 1")
        except Exception as e:
            errors.add(e)
    client.close()
    kept = admin(f"SELECT count(*) FROM ledger WHERE note = 'kept-{tag}'")
    leaked = admin(f"SELECT count(*) FROM ledger WHERE note = 'leaked-{tag}'")
    return errors, {"committed_row_kept": kept == 1, "leaked_row_rolled_back": leaked == 0,
                    "leaker_saw": leaker.first}


def cap(client_class, recommended):
    app = f"{client_class.name}-cap"
    sampler = PeakSampler(app)
    client = client_class(app, 3, recommended)
    errors = Errors()
    in_workers(client, 5, "SELECT pg_sleep(0.3)", errors)
    client.close()
    peak = sampler.stop()
    return errors, {"peak_sessions": peak, "cap": 3}


class RunningSampler(PeakSampler):
    """Samples how many sessions of an application run a statement (not queued) every 10 ms."""

    def run(self):
        cur = self.conn.cursor()
        while self.running:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event = 'PgSleep'",
                        (self.app,))
            self.peak = max(self.peak, cur.fetchone()[0])
            time.sleep(0.01)


def active(client_class, recommended):
    """4 workers share a pool of 4 under max_active = 1: they take turns inside the server and
    see no error. Then, under max_active = 1 with active_wait 0.3 s, a statement queued behind a
    transaction held for 1.5 s gets 53000, and the pool serves the next ones."""
    app = f"{client_class.name}-active"
    sampler = RunningSampler(app)
    client = client_class(app, 4, recommended)
    errors = Errors()
    in_workers(client, 4, "SELECT pg_sleep(0.2)", errors)
    client.close()
    peak = sampler.stop()
    waits = admin(f"SELECT active_waits FROM connguard.rule_stats WHERE rule_name = '{app}'")

    timeout_app = f"{client_class.name}-qtimeout"
    client = client_class(timeout_app, 2, recommended)
    timed_out = Errors()
    holder = threading.Thread(target=lambda: client.leak("SELECT 1", 1.5))
    holder.start()
    time.sleep(0.4)
    try:
        client.run("SELECT 1")
    except Exception as e:
        timed_out.add(e)
    holder.join()
    usable = 0
    for _ in range(3):
        try:
            client.run("SELECT 1")
            usable += 1
        except Exception as e:
            errors.add(e)
    client.close()
    return errors, {"peak_running": peak, "max_active": 1, "active_waits": waits, "timeout_saw": timed_out.first,
                    "served_after_timeout": usable}


# What each step of the limits scenario runs, under which rule (the application's suffix).
LIMIT_STEPS = (("ended", "txtime", "SELECT pg_sleep(3)"),
               ("cancelled", "txcancel", "SELECT pg_sleep(3)"),
               ("statement", "stmt", "SELECT pg_sleep(1)"))


def limits(client_class, recommended):
    """Per-rule limits on what a session runs (issue 30): the error the code reads at each
    limit, and whether the pool serves the next statements."""
    errors = Errors()
    facts = {}
    for step, suffix, sql in LIMIT_STEPS:
        client = client_class(f"{client_class.name}-{suffix}", 2, recommended)
        saw = Errors()
        try:
            client.run(sql)
        except Exception as e:  # what the application code sees at the limit
            saw.add(e)
        served = 0
        for _ in range(3):
            try:
                client.run("SELECT 1")
                served += 1
            except Exception as e:
                errors.add(e)
        client.close()
        facts[f"{step}_saw"] = saw.first
        facts[f"served_after_{step}"] = served
    name = client_class.name
    facts["terminated_events"] = admin(f"SELECT count(*) FROM connguard.events WHERE event = 'terminated' AND "
                                       f"reason = 'transaction_time' AND application_name = '{name}-txtime'")
    facts["cancelled_events"] = admin(f"SELECT count(*) FROM connguard.events WHERE event = 'cancelled' AND "
                                      f"reason = 'transaction_time' AND application_name = '{name}-txcancel'")
    return errors, facts


def main():
    for name in sys.argv[2:]:
        for scenario in (idle, leak, cap, active, limits):
            for recommended in (True, False):
                try:
                    errors, facts = scenario(CLIENTS[name], recommended)
                    line = {"client": name, "scenario": scenario.__name__,
                            "settings": "recommended" if recommended else "defaults", "errors": errors.count,
                            "first_error": errors.first, **facts}
                except Exception as e:  # the harness itself failed: a test failure
                    line = {"client": name, "scenario": scenario.__name__,
                            "settings": "recommended" if recommended else "defaults", "harness_error": repr(e)[:300]}
                print(json.dumps(line), flush=True)


main()
