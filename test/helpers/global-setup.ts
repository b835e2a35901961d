// Once per test run: find or start a PostgreSQL server and migrate a template database that
// every test file clones (CREATE DATABASE … TEMPLATE is fast and isolates files from each other).
import crypto from "node:crypto";
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres, type EmbeddedDb } from "../../src/db/embedded.ts";
import { migrate } from "../../src/db/migrate.ts";
import { checkTools } from "./requirements.ts";

declare module "vitest" {
  export interface ProvidedContext {
    pgServerUrl: string;
    templateDb: string;
  }
}

let embedded: EmbeddedDb | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject) {
  // Tools from outside npm: said once here, and a failed run when GK_TEST_REQUIRE lists a missing one.
  const { tools, note } = checkTools();
  if (note) console.log(note);
  project.provide("tools", tools);
  let serverUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (!serverUrl) {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "gk-test-pg-"));
    fs.chmodSync(dataDir, 0o755);
    embedded = await startEmbeddedPostgres(path.join(dataDir, "data"), { persistent: false });
    serverUrl = embedded.url;
  }
  const templateDb = `gk_test_tpl_${crypto.randomBytes(4).toString("hex")}`;
  await adminQuery(serverUrl, `create database ${templateDb}`);
  await migrate(withDatabase(serverUrl, templateDb));
  project.provide("pgServerUrl", serverUrl);
  project.provide("templateDb", templateDb);
  return async () => {
    await adminQuery(serverUrl, `drop database if exists ${templateDb} with (force)`).catch(() => {});
    await embedded?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  };
}

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: withDatabase(serverUrl, "postgres") });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}
