// The GraphQL admin API: PostGraphile 5 (Amber preset) over gk_public only. The schema is
// introspected as gk_admin, so it shows what an admin may do; every request runs as the role of
// its bearer token (gk_admin or gk_viewer) and the grants decide what that role may read or change.
import type pg from "pg";
import type { Logger } from "pino";
import { postgraphile, type PostGraphileInstance } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { SafeError } from "postgraphile/grafast";
import type {} from "postgraphile/grafserv/node"; // types requestContext.node
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makeAuditPlugin } from "./audit.ts";
import { graphiqlInitScript } from "./graphiql.ts";
import { makeMaskError } from "./graphql-errors.ts";
import { DEFAULT_QUERY_LIMITS, makeQueryLimitsPlugin, type QueryLimits } from "./query-limits.ts";
import { requestIdentity } from "./request-identity.ts";

// Ruru's typings mark every client option as required; we set only these.
type RuruClientConfig = NonNullable<NonNullable<GraphileConfig.Preset["ruru"]>["clientConfig"]>;

export const API_SCHEMAS = ["gk_public"];
export const GRAPHQL_PATH = "/graphql";

export interface GraphqlOptions {
  pool: pg.Pool;
  /** Per-statement limit for API queries, e.g. "15s" (a PostgreSQL interval string). */
  statementTimeout: string;
  /** Page sizes, depth, aliases and cost budget; default DEFAULT_QUERY_LIMITS. */
  limits?: Partial<QueryLimits>;
  /** Where masked (unexpected) errors are logged, one JSON line each. */
  log?: Logger;
}

export function makePreset(opts: GraphqlOptions): GraphileConfig.Preset {
  return {
    extends: [PostGraphileAmberPreset],
    // Audit first: it wraps the limits, so a refused mutation is recorded too.
    plugins: [
      makeAuditPlugin({ pool: opts.pool, ...(opts.log ? { log: opts.log } : {}) }),
      makeQueryLimitsPlugin({ ...DEFAULT_QUERY_LIMITS, ...opts.limits }),
    ],
    pgServices: [
      makePgService({
        pool: opts.pool,
        schemas: API_SCHEMAS,
        pubsub: false,
        pgSettingsForIntrospection: { role: "gk_admin" },
        pgSettings(ctx) {
          const role = requestIdentity(ctx)?.role;
          // The HTTP layer rejects requests without a valid token; this is the backstop.
          if (!role) throw new SafeError("not authenticated", { statusCode: 401 });
          return { role, statement_timeout: opts.statementTimeout };
        },
      }),
    ],
    grafserv: {
      graphqlPath: GRAPHQL_PATH,
      graphiql: true,
      graphiqlPath: "/",
      graphiqlOnGraphQLGET: false,
      websockets: false,
      maxRequestLength: 1_000_000,
      maskError: makeMaskError(opts.log),
    },
    grafast: { explain: false },
    ruru: {
      clientConfig: {
        defaultHeaders: JSON.stringify({ Authorization: "Bearer <paste the token printed by groundskeeper>" }, null, 2),
        showPersistHeadersSettings: true,
        defaultQuery: "query Teams {\n  allTeams(first: 20) {\n    nodes { rowId name createdAt robotsByTeamId { totalCount } }\n  }\n}\n",
      } as RuruClientConfig,
      htmlParts: { bodyInitScript: graphiqlInitScript },
    },
  };
}

export function createPostgraphile(opts: GraphqlOptions): PostGraphileInstance {
  return postgraphile(makePreset(opts));
}
