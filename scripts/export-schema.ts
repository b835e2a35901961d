// npm run schema:export — writes the admin API's SDL to schema.graphql (committed, reviewed).
// Uses DATABASE_URL when set (it is migrated first), else a throwaway embedded PostgreSQL.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startEmbeddedPostgres } from "../src/db/embedded.ts";
import { migrate } from "../src/db/migrate.ts";

process.env.GRAPHILE_ENV ??= "production"; // read when PostGraphile loads, below
const { SCHEMA_FILE, schemaSdl } = await import("../src/server/schema-sdl.ts");

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
  const sdl = await schemaSdl(url);
  const changed = !fs.existsSync(SCHEMA_FILE) || fs.readFileSync(SCHEMA_FILE, "utf8") !== sdl;
  fs.writeFileSync(SCHEMA_FILE, sdl);
  console.log(`${path.relative(process.cwd(), SCHEMA_FILE)} ${changed ? "updated" : "unchanged"}`);
} finally {
  await stop();
}
