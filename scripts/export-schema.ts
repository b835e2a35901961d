// npm run schema:export — writes the admin API's SDL to schema.graphql and the database schema to
// schema.sql (both committed, reviewed, and checked for staleness by test/server.test.ts).
// Uses DATABASE_URL when set (it is migrated first), else a throwaway embedded PostgreSQL; schema.sql
// always comes from the embedded PostgreSQL's major (see src/db/schema-dump.ts).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startEmbeddedPostgres } from "../src/db/embedded.ts";
import { migrate } from "../src/db/migrate.ts";

process.env.GRAPHILE_ENV ??= "production"; // read when PostGraphile loads, below
const { SCHEMA_FILE, schemaSdl } = await import("../src/server/schema-sdl.ts");
const { SCHEMA_SQL_FILE, canonicalSchemaSql } = await import("../src/db/schema-dump.ts");

let url = process.env.DATABASE_URL;
let stop = async () => {};
if (!url) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-schema-"));
  fs.chmodSync(dir, 0o755);
  const pg = await startEmbeddedPostgres(path.join(dir, "data"), { persistent: false });
  url = pg.url;
  stop = async () => {
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
}
try {
  await migrate(url);
  write(SCHEMA_FILE, await schemaSdl(url));
  write(SCHEMA_SQL_FILE, await canonicalSchemaSql(url));
} finally {
  await stop();
}

function write(file: string, text: string): void {
  const changed = !fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text;
  fs.writeFileSync(file, text);
  console.log(`${path.relative(process.cwd(), file)} ${changed ? "updated" : "unchanged"}`);
}
