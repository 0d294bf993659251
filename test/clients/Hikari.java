// pgjdbc with HikariCP against a server with pg_connguard: the four scenarios of
// python_clients.py (idle, leak, cap, active, limits), with the README's recommended settings and with the
// defaults, through pgjdbc's default URL: it logs in without an application name and sends
// SET application_name right after, so every session here takes that path. The cap scenario
// uses no ApplicationName at all (the group is "PostgreSQL JDBC Driver"). Prints one JSON line
// per scenario and setting. Run: java -cp HikariCP.jar:postgresql.jar:slf4j-api.jar Hikari.java PORT
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

public class Hikari {
    static int port;
    static final long IDLE_WAIT = 2500;

    static String url(String app) {
        return "jdbc:postgresql://127.0.0.1:" + port + "/postgres" + (app == null ? "" : "?ApplicationName=" + app);
    }

    static long admin(String sql) throws SQLException {
        try (Connection c = DriverManager.getConnection(url(null), "postgres", "");
             Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
            return r.next() ? r.getLong(1) : -1;
        }
    }

    static class Errors {
        int count = 0;
        String first = null;
        synchronized void add(SQLException e) {
            count++;
            if (first == null) {
                String m = String.valueOf(e.getMessage()).split("\n")[0].replace("\"", "'");
                first = "{\"sqlstate\": " + (e.getSQLState() == null ? "null" : "\"" + e.getSQLState() + "\"")
                        + ", \"message\": \"" + (m.length() > 160 ? m.substring(0, 160) : m) + "\"}";
            }
        }
        String json() { return "\"errors\": " + count + ", \"first_error\": " + (first == null ? "null" : first); }
    }

    // Recommended: maximumPoolSize at or below the cap; HikariCP already checks a connection
    // idle for more than 500 ms before handing it out. Defaults: maximumPoolSize 10.
    static HikariDataSource pool(String app, int size, boolean recommended) {
        HikariConfig c = new HikariConfig();
        c.setJdbcUrl(url(app));
        c.setUsername("app");
        c.setPassword("");
        if (recommended) c.setMaximumPoolSize(size);
        return new HikariDataSource(c);
    }

    static int one(HikariDataSource ds, String sql) throws SQLException {
        try (Connection c = ds.getConnection(); Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
            r.next();
            return 1;
        }
    }

    // The most `count` reached, sampled every 10 ms (as superuser) from construction to stop().
    static class Sampler {
        final AtomicInteger peak = new AtomicInteger();
        volatile boolean sampling = true;
        final Thread thread;
        Sampler(String count) {
            thread = new Thread(() -> {
                try (Connection c = DriverManager.getConnection(url("sampler"), "postgres", "")) {
                    while (sampling) {
                        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(count)) {
                            r.next();
                            peak.accumulateAndGet(r.getInt(1), Math::max);
                        }
                        Thread.sleep(10);
                    }
                } catch (Exception e) {
                    peak.set(-1000);
                }
            });
            thread.start();
        }
        int stop() throws InterruptedException {
            sampling = false;
            thread.join();
            return peak.get();
        }
    }

    // `workers` threads each run `sql` three times through the pool.
    static void inWorkers(HikariDataSource ds, int workers, String sql, Errors errors) throws InterruptedException {
        List<Thread> threads = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            Thread t = new Thread(() -> {
                for (int i = 0; i < 3; i++) {
                    try { one(ds, sql); } catch (SQLException e) { errors.add(e); }
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) t.join();
    }

    static String idle(boolean recommended) throws Exception {
        String app = "hikari-idle";
        Errors errors = new Errors();
        HikariDataSource ds = pool(app, 2, recommended);
        Thread a = new Thread(() -> { try { one(ds, "SELECT pg_sleep(0.2)"); } catch (SQLException e) { errors.add(e); } });
        Thread b = new Thread(() -> { try { one(ds, "SELECT pg_sleep(0.2)"); } catch (SQLException e) { errors.add(e); } });
        a.start(); b.start(); a.join(); b.join();
        Thread.sleep(IDLE_WAIT);
        for (int i = 0; i < 4; i++) {
            try { one(ds, "SELECT 1"); } catch (SQLException e) { errors.add(e); }
        }
        ds.close();
        long ended = admin("SELECT count(*) FROM connguard.events WHERE event = 'terminated' AND reason = 'idle' AND application_name = '" + app + "'");
        return errors.json() + ", \"sessions_ended_idle\": " + ended;
    }

    static String leak(boolean recommended) throws Exception {
        String app = "hikari-leak";
        String tag = "hikari-" + (recommended ? "rec" : "def");
        Errors errors = new Errors();
        Errors leaker = new Errors();
        HikariDataSource ds = pool(app, 2, recommended);
        try (Connection c = ds.getConnection(); Statement s = c.createStatement()) {
            s.execute("INSERT INTO ledger VALUES ('kept-" + tag + "')");
        }
        try (Connection c = ds.getConnection(); Statement s = c.createStatement()) {
            c.setAutoCommit(false);
            s.execute("INSERT INTO ledger VALUES ('leaked-" + tag + "')");
            Thread.sleep(IDLE_WAIT);
            c.commit();
        } catch (SQLException e) {
            leaker.add(e);
        }
        for (int i = 0; i < 4; i++) {
            try { one(ds, "SELECT 1"); } catch (SQLException e) { errors.add(e); }
        }
        ds.close();
        long kept = admin("SELECT count(*) FROM ledger WHERE note = 'kept-" + tag + "'");
        long leaked = admin("SELECT count(*) FROM ledger WHERE note = 'leaked-" + tag + "'");
        return errors.json() + ", \"committed_row_kept\": " + (kept == 1) + ", \"leaked_row_rolled_back\": " + (leaked == 0)
                + ", \"leaker_saw\": " + (leaker.first == null ? "null" : leaker.first);
    }

    static String cap(boolean recommended) throws Exception {
        String app = "PostgreSQL JDBC Driver";  // pgjdbc's own name: no ApplicationName in the URL
        Errors errors = new Errors();
        Sampler sampler = new Sampler("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'");
        long rejectedBefore = admin("SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND application_name = '" + app + "'");
        HikariDataSource ds = pool(null, 3, recommended);
        inWorkers(ds, 5, "SELECT pg_sleep(0.3)", errors);
        Thread.sleep(300);  // the pool's own attempts to grow, recorded
        ds.close();
        int peak = sampler.stop();
        long rejected = admin("SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND application_name = '" + app + "'") - rejectedBefore;
        long endedForCap = admin("SELECT count(*) FROM connguard.events WHERE event = 'terminated' AND reason = 'cap'");
        return errors.json() + ", \"peak_sessions\": " + peak + ", \"cap\": 3, \"rejected_events\": " + rejected
                + ", \"terminated_cap_events\": " + endedForCap;
    }

    // 4 workers share a pool of 4 under max_active = 1: they take turns inside the server, no
    // error. Then, under max_active = 1 with active_wait 0.3 s, a statement queued behind a
    // transaction held for 1.5 s gets 53000, and the pool serves the next ones.
    static String active(boolean recommended) throws Exception {
        String app = "hikari-active";
        Errors errors = new Errors();
        Sampler sampler = new Sampler("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app
                + "' AND wait_event = 'PgSleep'");
        HikariDataSource ds = pool(app, 4, recommended);
        inWorkers(ds, 4, "SELECT pg_sleep(0.2)", errors);
        ds.close();
        int peak = sampler.stop();
        long waits = admin("SELECT active_waits FROM connguard.rule_stats WHERE rule_name = '" + app + "'");

        HikariDataSource timeoutPool = pool("hikari-qtimeout", 2, recommended);
        Errors timedOut = new Errors();
        try (Connection holder = timeoutPool.getConnection(); Statement s = holder.createStatement()) {
            holder.setAutoCommit(false);
            s.execute("SELECT 1");
            try { one(timeoutPool, "SELECT 1"); } catch (SQLException e) { timedOut.add(e); }
            Thread.sleep(1100);
            holder.commit();
        }
        int served = 0;
        for (int i = 0; i < 3; i++) {
            try { one(timeoutPool, "SELECT 1"); served++; } catch (SQLException e) { errors.add(e); }
        }
        timeoutPool.close();
        return errors.json() + ", \"peak_running\": " + peak + ", \"max_active\": 1, \"active_waits\": " + waits
                + ", \"timeout_saw\": " + (timedOut.first == null ? "null" : timedOut.first)
                + ", \"served_after_timeout\": " + served;
    }

    // Per-rule limits on what a session runs: a statement past max_transaction_time (1 s) ends
    // its session (25P04); under action = 'cancel' it is cancelled (57014) and the session
    // lives; a rule's statement_timeout (0.3 s) cancels it (57014). After each the pool serves
    // 3 statements. pgjdbc names the session by SET right after login: the rule's
    // statement_timeout comes with that rename.
    static String limits(boolean recommended) throws Exception {
        String[][] steps = {{"ended", "txtime", "SELECT pg_sleep(3)"}, {"cancelled", "txcancel", "SELECT pg_sleep(3)"},
                            {"statement", "stmt", "SELECT pg_sleep(1)"}};
        Errors errors = new Errors();
        StringBuilder facts = new StringBuilder();
        for (String[] step : steps) {
            HikariDataSource ds = pool("hikari-" + step[1], 2, recommended);
            Errors saw = new Errors();
            try { one(ds, step[2]); } catch (SQLException e) { saw.add(e); }
            int served = 0;
            for (int i = 0; i < 3; i++) {
                try { one(ds, "SELECT 1"); served++; } catch (SQLException e) { errors.add(e); }
            }
            ds.close();
            facts.append(", \"").append(step[0]).append("_saw\": ").append(saw.first == null ? "null" : saw.first)
                 .append(", \"served_after_").append(step[0]).append("\": ").append(served);
        }
        long terminated = admin("SELECT count(*) FROM connguard.events WHERE event = 'terminated' AND "
                + "reason = 'transaction_time' AND application_name = 'hikari-txtime'");
        long cancelled = admin("SELECT count(*) FROM connguard.events WHERE event = 'cancelled' AND "
                + "reason = 'transaction_time' AND application_name = 'hikari-txcancel'");
        return errors.json() + facts + ", \"terminated_events\": " + terminated + ", \"cancelled_events\": " + cancelled;
    }

    interface Scenario { String run(boolean recommended) throws Exception; }

    public static void main(String[] args) throws Exception {
        port = Integer.parseInt(args[0]);
        String[] names = {"idle", "leak", "cap", "active", "limits"};
        Scenario[] scenarios = {Hikari::idle, Hikari::leak, Hikari::cap, Hikari::active, Hikari::limits};
        for (int i = 0; i < scenarios.length; i++) {
            for (boolean recommended : new boolean[] {true, false}) {
                String head = "{\"client\": \"hikari\", \"scenario\": \"" + names[i] + "\", \"settings\": \""
                        + (recommended ? "recommended" : "defaults") + "\", ";
                String body;
                try {
                    body = scenarios[i].run(recommended);
                } catch (Exception e) {
                    body = "\"harness_error\": \"" + String.valueOf(e).replace("\"", "'").replace("\n", " ") + "\"";
                }
                System.out.println(head + body + "}");
            }
        }
    }
}
