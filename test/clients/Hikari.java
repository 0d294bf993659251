// pgjdbc with HikariCP against a server with pg_connguard: the three scenarios of
// python_clients.py (idle, leak, cap), with the README's recommended settings and with the
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
        AtomicInteger peak = new AtomicInteger();
        final boolean[] sampling = {true};
        Thread sampler = new Thread(() -> {
            try (Connection c = DriverManager.getConnection(url("sampler"), "postgres", "")) {
                while (sampling[0]) {
                    try (Statement s = c.createStatement();
                         ResultSet r = s.executeQuery("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'")) {
                        r.next();
                        peak.accumulateAndGet(r.getInt(1), Math::max);
                    }
                    Thread.sleep(10);
                }
            } catch (Exception e) {
                peak.set(-1000);
            }
        });
        sampler.start();
        long rejectedBefore = admin("SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND application_name = '" + app + "'");
        HikariDataSource ds = pool(null, 3, recommended);
        List<Thread> workers = new ArrayList<>();
        for (int w = 0; w < 5; w++) {
            Thread t = new Thread(() -> {
                for (int i = 0; i < 3; i++) {
                    try { one(ds, "SELECT pg_sleep(0.3)"); } catch (SQLException e) { errors.add(e); }
                }
            });
            workers.add(t);
            t.start();
        }
        for (Thread t : workers) t.join();
        Thread.sleep(300);  // the pool's own attempts to grow, recorded
        ds.close();
        sampling[0] = false;
        sampler.join();
        long rejected = admin("SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND application_name = '" + app + "'") - rejectedBefore;
        long endedForCap = admin("SELECT count(*) FROM connguard.events WHERE event = 'terminated' AND reason = 'cap'");
        return errors.json() + ", \"peak_sessions\": " + peak.get() + ", \"cap\": 3, \"rejected_events\": " + rejected
                + ", \"terminated_cap_events\": " + endedForCap;
    }

    interface Scenario { String run(boolean recommended) throws Exception; }

    public static void main(String[] args) throws Exception {
        port = Integer.parseInt(args[0]);
        String[] names = {"idle", "leak", "cap"};
        Scenario[] scenarios = {Hikari::idle, Hikari::leak, Hikari::cap};
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
