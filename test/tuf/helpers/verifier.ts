// The second verifier beside tuf-js: test/tuf/helpers/verify_tuf.py checks every document a
// team's repository stored and served with securesystemslib (what python-tuf signs and verifies
// with). Tests call verifyPublished after publishing, or verifyAfterEach(db) once per file so
// every state a test leaves behind is checked; without python3-securesystemslib (needs() says
// so once for the run) it checks nothing, and CI makes the package mandatory.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { canonicalize } from "@tufjs/canonical-json";
import { afterEach } from "vitest";
import type { BlobStore } from "../../../src/adapters/blobs/types.ts";
import { metadataKey } from "../../../src/tuf/layout.ts";
import type { TestDb } from "../../helpers/db.ts";
import { needs } from "../../helpers/requirements.ts";

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "verify_tuf.py");

export interface VerifyResult {
  ok: boolean;
  errors: string[];
  documents: number;
}

export interface Published {
  teamId: string;
  blobs: BlobStore;
}

/** What the python verifier says about the team's stored and served documents. */
export async function verifyRepository(db: TestDb, repo: Published): Promise<VerifyResult> {
  const stored = (
    await db.query<{ role: string; version: number; document: string }>(
      "select role, version, document from gk_public.tuf_metadata where team_id = $1 order by id",
      [repo.teamId],
    )
  ).rows;
  const files: Record<string, string> = {};
  const prefix = metadataKey(repo.teamId, "");
  let after: string | undefined;
  for (;;) {
    const page = await repo.blobs.list(prefix, { after, limit: 1000 });
    for (const key of page.keys) {
      const body = await repo.blobs.get(key);
      if (body) files[key.slice(prefix.length)] = Buffer.from(body).toString("utf8");
    }
    if (!page.next) break;
    after = page.next;
  }
  // The bytes Node signs: @tufjs/canonical-json over the document as a client parses it.
  const canonical: Record<string, string> = {};
  for (const d of stored) canonical[`${d.role}:${d.version}`] = canonicalize(JSON.parse(d.document).signed);
  // When nothing is dirty or pending, the published bins must list exactly the database's rows
  // (PostgreSQL renders the JSON, so integers stay exact on their way to python).
  const clean = (
    await db.query(
      `select not exists (select 1 from gk_public.tuf_roles where team_id = $1 and dirty)
          and not exists (select 1 from gk_public.tuf_metadata where team_id = $1 and uploaded_at is null) as clean`,
      [repo.teamId],
    )
  ).rows[0].clean;
  const targets = clean
    ? (
        await db.query(
          `select coalesce(json_agg(json_build_object('path', path, 'length', length, 'hashes', hashes, 'custom', custom)), '[]')::text as t
             from gk_public.tuf_targets where team_id = $1`,
          [repo.teamId],
        )
      ).rows[0].t
    : null;
  const r = spawnSync("/usr/bin/python3", [SCRIPT], {
    input: JSON.stringify({ files, stored, canonical, targets }),
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
  } catch {
    throw new Error(`verify_tuf.py failed (exit ${r.status}): ${r.stderr || r.stdout}`);
  }
}

/** Throws with the verifier's findings unless the repository passes (no-op without securesystemslib). */
export async function verifyPublished(db: TestDb, repo: Published): Promise<void> {
  if (!needs("securesystemslib")) return;
  const r = await verifyRepository(db, repo);
  if (!r.ok) throw new Error(`securesystemslib rejects the repository of team ${repo.teamId}:\n  ${r.errors.join("\n  ")}`);
}

/** After every test of the file: verify every repository the tests made (registered with track). */
export function verifyAfterEach(db: TestDb, repos: () => Published[]): void {
  afterEach(async () => {
    for (const repo of repos()) await verifyPublished(db, repo);
  });
}
