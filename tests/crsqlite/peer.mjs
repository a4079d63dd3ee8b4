// The reference peer: runs SQL against the real cr-sqlite 0.16 (WebAssembly) in Node and
// prints every result row as JSON, one row per line. Reads the SQL statements to run, one per
// line, from standard input. Used by the Rust interoperability tests (tests/tests/stayos/).
import { readFileSync } from 'node:fs';
import SQLiteESMFactory from '@vlcn.io/wa-sqlite/dist/crsqlite.mjs';
import * as SQLite from '@vlcn.io/wa-sqlite';

// The package does not export its .wasm file, so it is read from the installed folder.
const wasm = new URL('./node_modules/@vlcn.io/crsqlite-wasm/dist/crsqlite.wasm', import.meta.url);
const module = await SQLiteESMFactory({ wasmBinary: readFileSync(wasm) });
const sqlite3 = SQLite.Factory(module);
const db = await sqlite3.open_v2(':memory:');

const input = readFileSync(0, 'utf8');
for (const sql of input.split('\n')) {
  if (sql.trim() === '') continue;
  const rows = [];
  try {
    await sqlite3.exec(db, sql, (row) => rows.push(row));
    process.stdout.write(JSON.stringify({ ok: rows }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err.message ?? err) }) + '\n');
  }
}
// The in-memory database goes away with the process; a failed statement may leave one open.
