// Bounds on what one GraphQL operation may ask for, so that no query can grow the heap of the
// process that also runs the worker (`groundskeeper start`). Three layers, each through a real
// extension point of the PostGraphile 5 stack:
//  - page size: every connection gets a default `first` when neither `first` nor `last` is given
//    (a graphile-build hook wrapping the connection field's plan), and a maximum;
//  - shape: selection depth, nested lists and aliases (GraphQL validation rules added through
//    grafserv's `setPreset` middleware; cached per document like the standard rules);
//  - cost: before planning, a cost estimate with the request's variables (grafast's `execute`
//    middleware, so in-process execution is bounded too): every connection multiplies the cost
//    of its selection by its page size, so nested connections are priced as the rows they fetch.
// A refused operation gets one GraphQL error with `extensions.code` and nothing is executed.
import { depthLimit } from "@graphile/depth-limit";
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { getComplexity, type ComplexityEstimator } from "graphql-query-complexity";
import { constant, lambda, type Step } from "postgraphile/grafast";
import {
  GraphQLError,
  getNamedType,
  isObjectType,
  type GraphQLNamedType,
  type ValidationContext,
  type ValidationRule,
} from "postgraphile/graphql";

export interface QueryLimits {
  /** Rows of a connection when the query gives neither `first` nor `last`. */
  defaultPageSize: number;
  /** Largest `first` / `last` accepted. */
  maxPageSize: number;
  /** Largest estimated cost of one operation (about the number of values it may return). */
  maxCost: number;
  /** Nested selection sets. */
  maxDepth: number;
  /** Nested lists (a connection's `nodes` is one). */
  maxListDepth: number;
  /** Aliased fields in one operation. */
  maxAliases: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = {
  defaultPageSize: 100,
  maxPageSize: 1000,
  maxCost: 50_000,
  maxDepth: 12,
  maxListDepth: 4,
  maxAliases: 30,
};

/** A connection type as PostGraphile builds them: `nodes`/`edges` plus `pageInfo`. */
function isConnection(type: GraphQLNamedType): boolean {
  if (!isObjectType(type)) return false;
  const fields = type.getFields();
  return "pageInfo" in fields && ("nodes" in fields || "edges" in fields);
}

function refusal(message: string, code: string, extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extra } });
}

/** Connections cost their page size times their selection; every other field costs 1 plus its selection. */
export function costEstimator(limits: QueryLimits): ComplexityEstimator {
  return ({ field, args, childComplexity }) => {
    if (!isConnection(getNamedType(field.type))) return 1 + childComplexity;
    for (const arg of ["first", "last"] as const) {
      const n = args[arg];
      if (typeof n === "number" && n > limits.maxPageSize) {
        throw refusal(`${field.name}(${arg}: ${n}) is over the maximum page size of ${limits.maxPageSize}`, "PAGE_TOO_LARGE", {
          maxPageSize: limits.maxPageSize,
        });
      }
    }
    const page = args.first ?? args.last ?? limits.defaultPageSize;
    return 1 + page * childComplexity;
  };
}

/** The page size a connection's plan uses: `first`, else all of `last`, else the default. */
function pageSize(limits: QueryLimits) {
  return ([first, last]: readonly [unknown, unknown]) => (first ?? (last == null ? limits.defaultPageSize : null)) as number | null;
}

/** A validation rule whose errors carry `extensions.code` (validation errors bypass maskError). */
function withCode(code: string, rule: ValidationRule): ValidationRule {
  return (context) => {
    const coded = Object.create(context, {
      reportError: {
        value: (e: GraphQLError) =>
          context.reportError(new GraphQLError(e.message, { nodes: e.nodes, extensions: { ...e.extensions, code } })),
      },
    }) as ValidationContext;
    return rule(coded);
  };
}

export function makeQueryLimitsPlugin(limits: QueryLimits = DEFAULT_QUERY_LIMITS): GraphileConfig.Plugin {
  const estimators = [costEstimator(limits)];
  const shapeRules = [
    withCode(
      "QUERY_TOO_DEEP",
      depthLimit({
        maxDepth: limits.maxDepth,
        maxListDepth: limits.maxListDepth,
        revealDetails: true,
        // graphql 16's getIntrospectionQuery (GraphiQL's) nests ofType 9 times.
        maxDepthByFieldCoordinates: { "__Type.ofType": 10 },
        maxIntrospectionDepth: 16,
      }),
    ),
    maxAliasesRule({
      n: limits.maxAliases,
      // Report a validation error instead of throwing out of validation (which grafserv logs as a crash).
      propagateOnRejection: false,
      onReject: [
        (ctx, _err) =>
          ctx?.reportError(
            new GraphQLError(`too many aliases: at most ${limits.maxAliases} in one operation`, {
              extensions: { code: "TOO_MANY_ALIASES" },
            }),
          ),
      ],
    }),
  ];
  return {
    name: "GroundskeeperQueryLimitsPlugin",
    description: "Default and maximum page sizes, depth/alias limits and a cost budget for every operation",
    version: "1.0.0",
    schema: {
      hooks: {
        // The connection's plan sets `first` itself (from `first` and `last`), so an absent
        // `first` gets the default; the `first` argument's own applyPlan is then a no-op.
        GraphQLObjectType_fields_field(field, _build, context) {
          const plan = field.plan;
          if (!context.scope.isPgFieldConnection || !plan) return field;
          const size = pageSize(limits);
          return {
            ...field,
            plan($parent: Step, fieldArgs, info) {
              const $connection = plan($parent, fieldArgs, info) as Step & { setFirst?(n: Step): void; getFirst?(): unknown };
              if (typeof $connection?.setFirst !== "function" || $connection.getFirst?.() != null) return $connection;
              const has = (name: string) => info.field.args.some((a) => a.name === name);
              const $first = has("first") ? fieldArgs.getRaw("first") : constant(null);
              const $last = has("last") ? fieldArgs.getRaw("last") : constant(null);
              $connection.setFirst(lambda([$first, $last], size, true));
              return $connection;
            },
          };
        },
        GraphQLObjectType_fields_field_args: {
          after: ["PgFirstLastBeforeAfterArgsPlugin"],
          callback(args, _build, context) {
            if (!context.scope.isPgFieldConnection || !args.first) return args;
            return {
              ...args,
              first: {
                ...args.first,
                description: `Only read the first \`n\` values of the set (default ${limits.defaultPageSize}, at most ${limits.maxPageSize}).`,
                applyPlan() {},
              },
              ...(args.last
                ? { last: { ...args.last, description: `Only read the last \`n\` values of the set (at most ${limits.maxPageSize}).` } }
                : {}),
            };
          },
        },
      },
    },
    grafserv: {
      middleware: {
        setPreset(next, event) {
          event.validationRules.push(...shapeRules);
          return next();
        },
      },
    },
    grafast: {
      middleware: {
        execute(next, event) {
          const { schema, document, variableValues, operationName } = event.args;
          let cost: number;
          try {
            cost = getComplexity({
              schema,
              query: document,
              estimators,
              variables: (variableValues ?? {}) as Record<string, unknown>,
              ...(operationName ? { operationName } : {}),
            });
          } catch (e) {
            return {
              errors: [e instanceof GraphQLError ? e : refusal(`cannot estimate the query's cost: ${(e as Error).message}`, "BAD_REQUEST")],
            };
          }
          if (cost > limits.maxCost) {
            return {
              errors: [
                refusal(
                  `query is too expensive: estimated cost ${cost} is over the limit of ${limits.maxCost} ` +
                    `(each connection multiplies its selection by its page size, default ${limits.defaultPageSize}: ` +
                    "ask for fewer rows with `first`, fewer nested connections, or page with `after`)",
                  "QUERY_TOO_EXPENSIVE",
                  { cost, maxCost: limits.maxCost },
                ),
              ],
            };
          }
          return next();
        },
      },
    },
  };
}
