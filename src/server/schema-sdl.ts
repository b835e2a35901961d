// The admin API's GraphQL schema as SDL, sorted so that the committed schema.graphql diffs cleanly.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { lexicographicSortSchema, printSchema } from "postgraphile/graphql";
import { createPool } from "../db/pool.ts";
import { createPostgraphile } from "./graphql.ts";

export const SCHEMA_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../schema.graphql");

export async function schemaSdl(databaseUrl: string): Promise<string> {
  const pool = createPool(databaseUrl, 2);
  const pgl = createPostgraphile({ pool, statementTimeout: "15s" });
  try {
    return `${printSchema(lexicographicSortSchema(await pgl.getSchema()))}\n`;
  } finally {
    await pgl.release();
    await pool.end();
  }
}
