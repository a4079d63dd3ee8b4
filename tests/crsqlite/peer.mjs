// The reference peer: runs SQL against the real cr-sqlite 0.16 (WebAssembly) in Node. Reads
// SQL statements from standard input, one per line, runs each as soon as its line arrives
// and answers it at once with one line of JSON: `{"ok": [row, ...]}` (each row an array of
// column values) or `{"error": "message"}`. One process is one database with one site id,
// so a caller can keep it open and talk to it over several rounds (`tests::CrSqlite`), or
// write every statement and close its input (`tests::crsqlite`). Used by the Rust
// interoperability tests (tests/tests/stayos/).
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import SQLiteESMFactory from '@vlcn.io/wa-sqlite/dist/crsqlite.mjs';
import * as SQLite from '@vlcn.io/wa-sqlite';

// The package does not export its .wasm file, so it is read from the installed folder.
const wasm = new URL('./node_modules/@vlcn.io/crsqlite-wasm/dist/crsqlite.wasm', import.meta.url);
const module = await SQLiteESMFactory({ wasmBinary: readFileSync(wasm) });
const sqlite3 = SQLite.Factory(module);
const db = await sqlite3.open_v2(':memory:');

// Integers beyond 2^53 come back as BigInt, which JSON cannot carry as a number: they are
// sent as numbers when exact and as decimal strings otherwise (ask for quote() to be sure).
const json = (v) =>
  JSON.stringify(v, (_, x) =>
    typeof x === 'bigint' ? (Number.isSafeInteger(Number(x)) ? Number(x) : x.toString()) : x,
  );

// Lines are handled one at a time, in order: the loop awaits each statement before reading
// the next line. Writes to a pipe are synchronous in Node on POSIX, so each answer is out
// before the next statement starts.
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const sql of lines) {
  if (sql.trim() === '') continue;
  const rows = [];
  let answer;
  try {
    await sqlite3.exec(db, sql, (row) => rows.push(row));
    answer = json({ ok: rows });
  } catch (err) {
    answer = json({ error: String(err?.message ?? err) });
  }
  process.stdout.write(answer + '\n');
}
// The in-memory database goes away with the process; a failed statement may leave one open.
