// node-postgres's pg.Pool against a server with pg_connguard: the same three scenarios as
// python_clients.py (idle, leak, cap, active, limits), with the README's recommended settings and with the
// defaults. Prints one JSON line per scenario and setting. Usage: node node_pg.js PORT
'use strict';
const { Pool, Client } = require('pg');
const PORT = Number(process.argv[2]);
const base = { host: '127.0.0.1', port: PORT, database: 'postgres', user: 'app' };
const IDLE_WAIT = 2500;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function admin(sql) {
  const c = new Client({ ...base, user: 'postgres' });
  await c.connect();
  const r = await c.query(sql);
  await c.end();
  return r.rows[0] ? Object.values(r.rows[0])[0] : null;
}

class Errors {
  constructor() { this.count = 0; this.first = null; }
  add(e) {
    this.count += 1;
    if (!this.first) this.first = { sqlstate: e.code || null, message: String(e.message).split('\n')[0].slice(0, 160) };
  }
}

// Recommended: idleTimeoutMillis below idle_timeout (the pool closes idle clients first), max
// at or below the cap, and a pool 'error' handler (without one, an idle client ended by the
// server crashes the process). Defaults: idleTimeoutMillis 10 s, max 10, no handler.
function makePool(app, size, recommended, errors) {
  const options = { ...base, application_name: app };
  if (recommended) Object.assign(options, { max: size, idleTimeoutMillis: 500 });
  const pool = new Pool(options);
  if (recommended) pool.on('error', () => {});  // an idle client ended: the pool drops it
  else pool.on('error', (e) => errors.add(e));   // counted: unhandled, it would crash the process
  return pool;
}

async function idle(recommended) {
  const app = 'node_pg-idle';
  const errors = new Errors();
  const pool = makePool(app, 2, recommended, errors);
  await Promise.all([pool.query('SELECT pg_sleep(0.2)'), pool.query('SELECT pg_sleep(0.2)')]);
  await sleep(IDLE_WAIT);
  for (let i = 0; i < 4; i++) {
    try { await pool.query('SELECT 1'); } catch (e) { errors.add(e); }
  }
  await pool.end();
  const ended = await admin(`SELECT count(*)::int FROM connguard.events WHERE event = 'terminated' AND reason = 'idle' AND application_name = '${app}'`);
  return [errors, { sessions_ended_idle: ended }];
}

async function leak(recommended) {
  const app = 'node_pg-leak';
  const errors = new Errors();
  const leaker = new Errors();
  const pool = makePool(app, 2, recommended, errors);
  const tag = `node_pg-${recommended ? 'rec' : 'def'}`;
  await pool.query(`INSERT INTO ledger VALUES ('kept-${tag}')`);
  const client = await pool.connect();
  // A client the code holds (pool.connect()) is outside the pool's 'error' handler: ended while
  // the code waits, it emits 'error' itself, and with no listener that crashes the process.
  // Recommended: a listener on every client held across a wait. Defaults: counted as errors.
  client.on('error', (e) => (recommended ? leaker : errors).add(e));
  try {
    await client.query('BEGIN');
    await client.query(`INSERT INTO ledger VALUES ('leaked-${tag}')`);
    await sleep(IDLE_WAIT);
    await client.query('COMMIT');
    client.release();
  } catch (e) {
    leaker.add(e);
    client.release(e);  // a broken client is destroyed, not returned
  }
  for (let i = 0; i < 4; i++) {
    try { await pool.query('SELECT 1'); } catch (e) { errors.add(e); }
  }
  await pool.end();
  const kept = await admin(`SELECT count(*)::int FROM ledger WHERE note = 'kept-${tag}'`);
  const leaked = await admin(`SELECT count(*)::int FROM ledger WHERE note = 'leaked-${tag}'`);
  return [errors, { committed_row_kept: kept === 1, leaked_row_rolled_back: leaked === 0, leaker_saw: leaker.first }];
}

// The most rows `sql` counted (it takes the application name as $1), sampled every 10 ms
// from start until stop().
async function startSampler(sql, app) {
  const client = new Client({ ...base, user: 'postgres' });
  await client.connect();
  let peak = 0;
  let sampling = true;
  const done = (async () => {
    while (sampling) {
      const r = await client.query(sql, [app]);
      peak = Math.max(peak, r.rows[0].n);
      await sleep(10);
    }
  })();
  return {
    stop: async () => {
      sampling = false;
      await done;
      await client.end();
      return peak;
    },
  };
}

// `workers` concurrent workers each run `sql` three times through the pool.
async function inWorkers(pool, workers, sql, errors) {
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let i = 0; i < 3; i++) {
      try { await pool.query(sql); } catch (e) { errors.add(e); }
    }
  }));
}

async function cap(recommended) {
  const app = 'node_pg-cap';
  const errors = new Errors();
  const sampler = await startSampler('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', app);
  const pool = makePool(app, 3, recommended, errors);
  await inWorkers(pool, 5, 'SELECT pg_sleep(0.3)', errors);
  await pool.end();
  return [errors, { peak_sessions: await sampler.stop(), cap: 3 }];
}

// 4 workers share a pool of 4 under max_active = 1: they take turns inside the server, no error.
// Then, under max_active = 1 with active_wait 0.3 s, a statement queued behind a transaction
// held for 1.5 s gets 53000, and the pool serves the next ones.
async function active(recommended) {
  const app = 'node_pg-active';
  const errors = new Errors();
  const sampler = await startSampler(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'PgSleep'", app);
  let pool = makePool(app, 4, recommended, errors);
  await inWorkers(pool, 4, 'SELECT pg_sleep(0.2)', errors);
  await pool.end();
  const peak = await sampler.stop();
  const waits = await admin("SELECT active_waits::int FROM connguard.rule_stats WHERE rule_name = 'node_pg-active'");

  pool = makePool('node_pg-qtimeout', 2, recommended, errors);
  const timedOut = new Errors();
  const holder = await pool.connect();
  await holder.query('BEGIN');
  await holder.query('SELECT 1');
  try { await pool.query('SELECT 1'); } catch (e) { timedOut.add(e); }
  await sleep(1100);
  await holder.query('COMMIT');
  holder.release();
  let served = 0;
  for (let i = 0; i < 3; i++) {
    try { await pool.query('SELECT 1'); served += 1; } catch (e) { errors.add(e); }
  }
  await pool.end();
  return [errors, { peak_running: peak, max_active: 1, active_waits: waits, timeout_saw: timedOut.first,
                    served_after_timeout: served }];
}

// Per-rule limits on what a session runs: a statement past max_transaction_time (1 s) ends its
// session (25P04); under action = 'cancel' it is cancelled (57014) and the session lives; a
// rule's statement_timeout (0.3 s) cancels it (57014). After each the pool serves 3 statements.
const LIMIT_STEPS = [['ended', 'txtime', 'SELECT pg_sleep(3)'], ['cancelled', 'txcancel', 'SELECT pg_sleep(3)'],
                     ['statement', 'stmt', 'SELECT pg_sleep(1)']];
async function limits(recommended) {
  const errors = new Errors();
  const facts = {};
  for (const [step, suffix, sql] of LIMIT_STEPS) {
    const pool = makePool(`node_pg-${suffix}`, 2, recommended, errors);
    const saw = new Errors();
    try { await pool.query(sql); } catch (e) { saw.add(e); }
    let served = 0;
    for (let i = 0; i < 3; i++) {
      try { await pool.query('SELECT 1'); served += 1; } catch (e) { errors.add(e); }
    }
    await pool.end();
    facts[`${step}_saw`] = saw.first;
    facts[`served_after_${step}`] = served;
  }
  facts.terminated_events = await admin("SELECT count(*)::int FROM connguard.events WHERE event = 'terminated' AND " +
                                        "reason = 'transaction_time' AND application_name = 'node_pg-txtime'");
  facts.cancelled_events = await admin("SELECT count(*)::int FROM connguard.events WHERE event = 'cancelled' AND " +
                                       "reason = 'transaction_time' AND application_name = 'node_pg-txcancel'");
  return [errors, facts];
}

(async () => {
  for (const scenario of [idle, leak, cap, active, limits]) {
    for (const recommended of [true, false]) {
      let line = { client: 'node_pg', scenario: scenario.name, settings: recommended ? 'recommended' : 'defaults' };
      try {
        const [errors, facts] = await scenario(recommended);
        line = { ...line, errors: errors.count, first_error: errors.first, ...facts };
      } catch (e) {
        line.harness_error = String(e).slice(0, 300);
      }
      console.log(JSON.stringify(line));
    }
  }
})();
