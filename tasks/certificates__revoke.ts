// Revokes a batch of 'revoking' certificates at the CA. The batch is claimed (committed, no row
// lock held across CA calls, sql/302_certificate_claims.sql): a duplicate job or an issuance still
// inside its CA call keeps rows out of it. What the CA knows is asked before anything is concluded:
// a certificate whose issuance may have reached the CA is looked up by our id (the request key),
// a missing serial is fetched by handle; only a certificate no request was ever sent for is
// never_issued, and one the CA cannot answer for stays visibly unresolved. Every outcome is
// recorded per row, conditional on the claim.
import crypto from "node:crypto";
import { z } from "zod";
import { caTimeoutMs } from "../src/adapters/ca/timeout.ts";
import { CaRequestError, type CertificateAuthority, type RevocationReason } from "../src/adapters/ca/types.ts";
import { mapSettled } from "../src/lib/map-limit.ts";
import { errorMessage } from "../src/lib/errors.ts";
import { requireService } from "../src/services.ts";
import { defineTask } from "../src/worker/define-task.ts";

const CA_PARALLELISM = 8;

const CANNOT_TELL =
  "unresolved: an issuance request for this certificate may have reached the CA, and this CA cannot be asked what it issued under the certificate's id; check the CA and answer with resolve_certificate";

interface Row {
  id: string;
  ca_ref: string | null;
  serial: string | null;
  revocation_reason: RevocationReason;
  attempted: boolean;
}

export default defineTask({
  payload: z.object({ ids: z.array(z.uuid()).min(1).max(1000) }).strict(),
  async run({ ids }, { services, helpers }) {
    const ca = requireService(services, "ca");
    const claim = crypto.randomUUID();
    const { rows } = await helpers.query<Row>("select * from gk_private.certificates_claim_revoke($1::uuid[], $2, $3::interval)", [
      ids,
      claim,
      `${caTimeoutMs(ca)} milliseconds`,
    ]);
    const neverIssued: string[] = [];
    const unresolved: string[] = [];
    const failed = new Map<string, string>();
    const learnt: Row[] = [];

    // No handle and no serial: did an issuance request ever leave for the CA?
    const unknown: Row[] = [];
    for (const r of rows) {
      if (r.serial != null || r.ca_ref != null) continue;
      if (!r.attempted) neverIssued.push(r.id);
      else if (!ca.lookup) unresolved.push(r.id);
      else unknown.push(r);
    }
    const looked = await mapSettled(unknown, CA_PARALLELISM, (r) => ca.lookup!(r.id));
    const extra: { id: string; refs: string[]; serials: (string | null)[] }[] = [];
    looked.forEach((res, i) => {
      const r = unknown[i]!;
      if (res.status === "rejected") failed.set(r.id, errorMessage(res.reason));
      else if (res.value.length === 0) neverIssued.push(r.id);
      else {
        const [first, ...more] = res.value;
        r.ca_ref = first!.caRef;
        r.serial = first!.serial;
        learnt.push(r);
        if (more.length > 0) extra.push({ id: r.id, refs: more.map((m) => m.caRef), serials: more.map((m) => m.serial) });
      }
    });
    // Further certificates the CA issued under one id (attempts that lost their answers) get rows.
    for (const e of extra)
      await helpers.query("select gk_private.certificate_orphans($1, $2::text[], $3::text[])", [e.id, e.refs, e.serials]);

    // Serial unknown (never downloaded, asynchronous CA): ask the CA by handle.
    const noSerial = rows.filter((r) => r.serial == null && r.ca_ref != null && !failed.has(r.id));
    const fetched = await mapSettled(noSerial, CA_PARALLELISM, (r) => ca.fetch(r.ca_ref!));
    fetched.forEach((res, i) => {
      const r = noSerial[i]!;
      if (res.status === "rejected") failed.set(r.id, errorMessage(res.reason));
      else if (res.value.status === "issued") (r.serial = res.value.serial), learnt.includes(r) || learnt.push(r);
      else if (res.value.status === "failed") neverIssued.push(r.id);
      else failed.set(r.id, "the CA has not issued the certificate yet (pending); retrying");
    });
    if (learnt.length > 0) {
      await helpers.query("select gk_private.certificates_learnt($1::uuid[], $2::text[], $3::text[], $4)", [
        learnt.map((r) => r.id),
        learnt.map((r) => r.ca_ref),
        learnt.map((r) => r.serial),
        claim,
      ]);
    }

    const withSerial = rows.filter((r) => r.serial != null && !failed.has(r.id));
    const done: string[] = [];
    for (const [reason, group] of groupBy(withSerial, (r) => r.revocation_reason)) {
      for (const [id, error] of await revokeGroup(ca, reason, group)) {
        if (error == null) done.push(id);
        else failed.set(id, error);
      }
    }

    await helpers.query("select gk_private.certificates_revoked($1::uuid[], $2::uuid[], $3)", [done, neverIssued, claim]);
    if (unresolved.length > 0)
      await helpers.query("select gk_private.certificates_unresolved($1::uuid[], $2, $3)", [unresolved, CANNOT_TELL, claim]);
    for (const [error, group] of groupByError(failed)) {
      await helpers.query("select gk_private.certificates_revoke_failed($1::uuid[], $2, $3)", [group, error, claim]);
    }
    if (failed.size > 0) {
      // The job retries with graphile-worker's backoff; the rows show attempts and last_error.
      const [first] = failed.values();
      throw new Error(`${failed.size} of ${ids.length} revocations failed (first: ${first})`);
    }
  },
});

// One round trip per reason where the CA takes batches; a batch the CA refuses (one bad serial)
// falls back to one call per serial so the others still go through.
async function revokeGroup(ca: CertificateAuthority, reason: RevocationReason, rows: Row[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  if (ca.revokeMany) {
    try {
      await ca.revokeMany(
        rows.map((r) => r.serial!),
        reason,
      );
      for (const r of rows) out.set(r.id, null);
      return out;
    } catch (e) {
      if (!(e instanceof CaRequestError) || rows.length === 1) {
        for (const r of rows) out.set(r.id, errorMessage(e));
        return out;
      }
    }
  }
  const results = await mapSettled(rows, CA_PARALLELISM, (r) => ca.revoke(r.serial!, reason));
  results.forEach((res, i) => {
    out.set(rows[i].id, res.status === "fulfilled" ? null : errorMessage(res.reason));
  });
  return out;
}

function groupBy<T, K>(items: Iterable<T>, key: (t: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

function groupByError(failed: Map<string, string>): Map<string, string[]> {
  return new Map([...groupBy(failed, ([, error]) => error)].map(([error, pairs]) => [error, pairs.map(([id]) => id)]));
}
