// Execute GraphQL as a given role: in-process (grafast with the resolved preset, no HTTP) and
// over HTTP (a real admin server on a free port, with real tokens).
import { grafast } from "postgraphile/grafast";
import { afterAll } from "vitest";
import { createPool } from "../../src/db/pool.ts";
import { createPostgraphile } from "../../src/server/graphql.ts";
import { areaServerParts } from "../../src/areas.ts";
import { startAdminServer, type AdminServer, type AdminServerOptions } from "../../src/server/server.ts";
import { createToken, type ApiRole, DB_ROLE } from "../../src/server/tokens.ts";
import type { TestDb } from "./db.ts";
import { testServices } from "./jobs.ts";

export interface GraphqlResult<T = any> {
  data?: T;
  errors?: { message: string; path?: string[] }[];
}

export interface InProcessGraphql {
  exec<T = any>(role: ApiRole, query: string, variables?: Record<string, unknown>): Promise<GraphqlResult<T>>;
}

/** GraphQL executed in this process as `role` (the pgSettings role the HTTP layer would set). */
export async function inProcessGraphql(db: TestDb): Promise<InProcessGraphql> {
  const pool = createPool(db.url, 4);
  const pgl = createPostgraphile({ pool, statementTimeout: "15s" });
  afterAll(async () => {
    await pgl.release();
    await pool.end();
  });
  return {
    async exec(role, query, variables) {
      const { schema, resolvedPreset } = await pgl.getSchemaResult();
      const result = await grafast({
        schema,
        resolvedPreset,
        requestContext: { groundskeeper: { role: DB_ROLE[role] } },
        source: query,
        variableValues: variables,
      });
      if (!("data" in result) && !("errors" in result)) throw new Error("unexpected streamed GraphQL result");
      return JSON.parse(JSON.stringify(result)) as GraphqlResult;
    },
  };
}

export interface HttpGraphql {
  server: AdminServer;
  url: string;
  tokens: Record<ApiRole, string>;
  /** POST /graphql with `Authorization: Bearer <token>` (token: a role's token, a raw string, or none). */
  post<T = any>(
    query: string,
    opts?: { as?: ApiRole; token?: string | null; variables?: Record<string, unknown> },
  ): Promise<{ status: number; body: GraphqlResult<T> }>;
  exec<T = any>(role: ApiRole, query: string, variables?: Record<string, unknown>): Promise<GraphqlResult<T>>;
}

/** A real admin server on a free port against `db`, with an admin and a viewer token. Closed after the file. */
export async function httpGraphql(db: TestDb, extra: Partial<AdminServerOptions> = {}): Promise<HttpGraphql> {
  const server = await startAdminServer({
    databaseUrl: db.url,
    host: "127.0.0.1",
    port: 0,
    services: testServices(),
    ...areaServerParts(),
    ...extra,
  });
  afterAll(() => server.close());
  const tokens = {
    admin: (await createToken(db.pool, "test admin", "admin")).token,
    viewer: (await createToken(db.pool, "test viewer", "viewer")).token,
  };
  const post: HttpGraphql["post"] = async (query, opts = {}) => {
    const token = opts.token !== undefined ? opts.token : tokens[opts.as ?? "admin"];
    const res = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables: opts.variables }),
    });
    return { status: res.status, body: (await res.json()) as GraphqlResult };
  };
  return {
    server,
    url: server.url,
    tokens,
    post,
    exec: async (role, query, variables) => (await post(query, { as: role, variables })).body,
  };
}
