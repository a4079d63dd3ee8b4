// The cr-sqlite side of `stayos-bench crdt` (tests/src/bin/stayos-bench.rs): the same workload
// as the Rust side, run against the real cr-sqlite 0.16 (WebAssembly) in Node, loaded the way
// peer.mjs loads it. Prints one JSON object per line: {"build", "rep", "step", "secs", "count"}
// per timed step, and {"fingerprint": {"rep", "source", "merged"}} per repetition, the rows of
// the writing and of the merging database in a form the Rust side prints the same way.
//
//   node bench.mjs [--build crsqlite|crsqlite-sync] [--rows N] [--reps N] [--updates N]
//                  [--insert-batch N] [--merge-batch N]
//
// `crsqlite` (the default) is the build the npm package @vlcn.io/crsqlite-wasm ships and
// peer.mjs loads: Asyncify-transformed, every call into SQLite is awaited. `crsqlite-sync` is
// the synchronous build of the same cr-sqlite and SQLite in its dependency @vlcn.io/wa-sqlite.
// Every database is in memory (`:memory:`). The timed work runs inside SQLite, one statement
// per batch, so that JavaScript's per-call cost is not counted: rows and changes come from a
// staging database (`/stage.db` in Emscripten's in-memory file system, attached as `s`). Only
// the single-row update transactions are driven from JavaScript, one call per statement, and
// the same loop against a statement that writes nothing is timed as their floor.
import { readFileSync } from 'node:fs';
import * as SQLite from '@vlcn.io/wa-sqlite';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => {
    if (a.startsWith('--')) pairs.push([a.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const BUILD = args.build ?? 'crsqlite';
const ROWS = Number(args.rows ?? 100000);
const REPS = Number(args.reps ?? 3);
const UPDATES = Number(args.updates ?? 10000);
const INSERT_BATCH = Number(args['insert-batch'] ?? 1000);
const MERGE_BATCH = Number(args['merge-batch'] ?? 10000);

const wasm =
  BUILD === 'crsqlite'
    ? new URL('./node_modules/@vlcn.io/crsqlite-wasm/dist/crsqlite.wasm', import.meta.url)
    : new URL(`./node_modules/@vlcn.io/wa-sqlite/dist/${BUILD}.wasm`, import.meta.url);
const { default: factory } = await import(
  new URL(`./node_modules/@vlcn.io/wa-sqlite/dist/${BUILD}.mjs`, import.meta.url)
);
const sqlite3 = SQLite.Factory(await factory({ wasmBinary: readFileSync(wasm) }));

// The workload, identical to tests/src/bin/stayos-bench.rs (`Row::new`).
const DDL = `CREATE TABLE bookings (
  id TEXT PRIMARY KEY NOT NULL, room INTEGER, guest TEXT, rate REAL, nights INTEGER,
  status TEXT, balance REAL, updated_at INTEGER)`;
const STATUSES = ['booked', 'checked_in', 'checked_out', 'cancelled'];
const hash = (x) => {
  // murmur3's 32-bit finaliser: a bijection, so distinct inputs give distinct outputs.
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
};
const hex = (v, width) => v.toString(16).padStart(width, '0');
function row(i) {
  const [a, b, c, d] = [hash(4 * i), hash(4 * i + 1), hash(4 * i + 2), hash(4 * i + 3)];
  const id = `${hex(a, 8)}-${hex(b >>> 16, 4)}-${hex(b & 0xffff, 4)}-${hex(c >>> 16, 4)}-${hex(c & 0xffff, 4)}${hex(d, 8)}`;
  return [
    id,
    100 + (i % 400),
    `guest-${b % 100000}`,
    80.25 + (i % 200) * 0.5,
    1 + (i % 14),
    STATUSES[i % 4],
    (i % 1000) * 1.5 + 0.25,
    1700000000 + i,
  ];
}
// The k-th single-row update transaction touches row `updateRow(k)`; 7919 is prime, so no row
// is updated twice, and both columns really change.
const updateRow = (k) => (k * 7919) % ROWS;


async function exec(db, sql) {
  await sqlite3.exec(db, sql);
}

async function rows(db, sql) {
  const out = [];
  await sqlite3.exec(db, sql, (r) => out.push(r));
  return out;
}

// A prepared statement kept for the whole step, as the Rust side's cached statements are.
async function prepare(db, sql) {
  const str = sqlite3.str_new(db, sql);
  const { stmt } = await sqlite3.prepare_v2(db, sqlite3.str_value(str));
  return {
    async run(values) {
      // Every number of this workload is an integer of 32 bits or a real that is not whole,
      // so binding by JavaScript type keeps SQLite's types.
      values.forEach((v, i) => sqlite3.bind(stmt, i + 1, v));
      while ((await sqlite3.step(stmt)) === SQLite.SQLITE_ROW);
      await sqlite3.reset(stmt);
    },
    async close() {
      await sqlite3.finalize(stmt);
      sqlite3.str_finish(str);
    },
  };
}

async function timed(rep, step, count, f) {
  const t = performance.now();
  await f();
  const secs = (performance.now() - t) / 1000;
  process.stdout.write(JSON.stringify({ build: BUILD, rep, step, secs, count }) + '\n');
}

const COLUMNS = 'id, room, guest, rate, nights, status, balance, updated_at';

async function openDb(crr) {
  const db = await sqlite3.open_v2(':memory:');
  await exec(db, DDL);
  if (crr) await exec(db, "SELECT crsql_as_crr('bookings')");
  await exec(db, "ATTACH '/stage.db' AS s");
  return db;
}

async function closeDb(db) {
  await exec(db, 'DETACH s; SELECT crsql_finalize()');
  await sqlite3.close(db);
}

// `count` rows of `from` in batches of `batch`, one transaction and one statement each.
async function batches(db, sql, count, batch) {
  const [begin, stmt, commit] = [
    await prepare(db, 'BEGIN'),
    await prepare(db, sql),
    await prepare(db, 'COMMIT'),
  ];
  for (let start = 0; start < count; start += batch) {
    await begin.run([]);
    await stmt.run([start, Math.min(count, start + batch)]);
    await commit.run([]);
  }
  for (const s of [begin, stmt, commit]) await s.close();
}

async function insertAll(db) {
  await batches(
    db,
    `INSERT INTO bookings (${COLUMNS}) SELECT ${COLUMNS} FROM s.src WHERE rowid > ?1 AND rowid <= ?2`,
    ROWS,
    INSERT_BATCH,
  );
}

async function updateTxs(db, sql) {
  const [begin, stmt, commit] = [
    await prepare(db, 'BEGIN'),
    await prepare(db, sql),
    await prepare(db, 'COMMIT'),
  ];
  for (let k = 0; k < UPDATES; k++) {
    const i = updateRow(k);
    const r = row(i);
    await begin.run([]);
    await stmt.run([STATUSES[(i + 1) % 4], r[6] + 1000, r[0]]);
    await commit.run([]);
  }
  for (const s of [begin, stmt, commit]) await s.close();
}

const CHANGE_COLUMNS = '"table", pk, cid, val, col_version, db_version, site_id, cl, seq';

async function merge(db, from, count) {
  await batches(
    db,
    `INSERT INTO crsql_changes (${CHANGE_COLUMNS})
       SELECT ${CHANGE_COLUMNS} FROM s.${from} WHERE rowid > ?1 AND rowid <= ?2`,
    count,
    MERGE_BATCH,
  );
}

// Every row's values in a form both sides print the same way.
const FINGERPRINT =
  "SELECT printf('%d rows, room %d, nights %d, updated_at %d, rate %.2f, balance %.2f, " +
  "guest %d, status %d/%d, ids %s..%s', count(*), sum(room), sum(nights), sum(updated_at), " +
  'total(rate), total(balance), sum(length(guest)), sum(length(status)), ' +
  'sum(unicode(status)), min(id), max(id)) FROM bookings';

// The rows to insert, staged once.
{
  const stage = await sqlite3.open_v2('/stage.db');
  await exec(stage, `PRAGMA journal_mode = OFF; CREATE TABLE src (${COLUMNS}); BEGIN`);
  const ins = await prepare(stage, `INSERT INTO src VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
  for (let i = 0; i < ROWS; i++) await ins.run(row(i));
  await ins.close();
  await exec(stage, 'COMMIT; SELECT crsql_finalize()');
  await sqlite3.close(stage);
}

for (let rep = 0; rep < REPS; rep++) {
  const plain = await openDb(false);
  const a = await openDb(true);
  await timed(rep, 'insert_plain', ROWS, () => insertAll(plain));
  await timed(rep, 'insert_crr', ROWS, () => insertAll(a));
  // The same loop untimed first, so that the timed loops run JIT-compiled.
  await updateTxs(plain, 'SELECT ?, ?, ?');
  await timed(rep, 'update_floor', UPDATES, () => updateTxs(plain, 'SELECT ?, ?, ?'));
  await timed(rep, 'update_plain', UPDATES, () =>
    updateTxs(plain, 'UPDATE bookings SET status = ?, balance = ? WHERE id = ?'),
  );
  await timed(rep, 'update_crr', UPDATES, () =>
    updateTxs(a, 'UPDATE bookings SET status = ?, balance = ? WHERE id = ?'),
  );
  await closeDb(plain);

  const [[v1]] = await rows(a, 'SELECT crsql_db_version()');
  const stage = async (name, since) => {
    await exec(
      a,
      `DROP TABLE IF EXISTS s.${name};
       CREATE TABLE s.${name} AS SELECT ${CHANGE_COLUMNS} FROM crsql_changes
         WHERE db_version > ${since} ORDER BY db_version, seq`,
    );
    const [[n]] = await rows(a, `SELECT count(*) FROM s.${name}`);
    return n;
  };
  const newRows = await stage('new_rows', 0);
  // Reading every column of every change, inside SQLite.
  await timed(rep, 'read_changes', newRows, async () => {
    const [[n]] = await rows(
      a,
      `SELECT count(*) + 0 * sum(length("table") + length(pk) + length(cid) + length(val)
         + col_version + db_version + length(site_id) + cl + seq)
       FROM crsql_changes WHERE db_version > 0`,
    );
    if (n !== newRows) throw new Error(`read ${n} changes, staged ${newRows}`);
  });
  // Three columns of every row change, in one transaction.
  await exec(
    a,
    `UPDATE bookings SET guest = guest || ' (vip)', balance = balance + 1, updated_at = updated_at + 1`,
  );
  const updates = await stage('updates', v1);

  const b = await openDb(true);
  await timed(rep, 'merge_new_rows', newRows, () => merge(b, 'new_rows', newRows));
  await timed(rep, 'merge_updates', updates, () => merge(b, 'updates', updates));
  const [[source]] = await rows(a, FINGERPRINT);
  const [[merged]] = await rows(b, FINGERPRINT);
  process.stdout.write(JSON.stringify({ fingerprint: { rep, source, merged } }) + '\n');
  await closeDb(a);
  await closeDb(b);
}
