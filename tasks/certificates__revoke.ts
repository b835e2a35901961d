// Revokes a batch of 'revoking' certificates at the CA. Rows are locked for the whole job (a
// concurrent duplicate skips them; the issue task takes the same lock), missing serials are
// learnt by fetching the certificate by its CA handle, and every outcome is recorded per row:
// revoked, revoked-never-issued, or still revoking with attempts/last_error/next_attempt_at.
import { z } from "zod";
import { CaRequestError, type CertificateAuthority, type RevocationReason } from "../src/adapters/ca/types.ts";
import { mapSettled } from "../src/lib/map-limit.ts";
import { errorMessage } from "../src/lib/errors.ts";
import { inJobTransaction } from "../src/worker/tx.ts";
import { requireService } from "../src/services.ts";
import { defineTask } from "../src/worker/define-task.ts";

const CA_PARALLELISM = 8;

interface Row {
  id: string;
  ca_ref: string | null;
  serial: string | null;
  revocation_reason: RevocationReason;
}

export default defineTask({
  payload: z.object({ ids: z.array(z.uuid()).min(1).max(1000) }).strict(),
  async run({ ids }, { services, helpers }) {
    const ca = requireService(services, "ca");
    const failures = await inJobTransaction(helpers, async (c) => {
      const { rows } = await c.query<Row>(
        `select id, ca_ref, serial, revocation_reason from gk_public.certificates
          where id = any($1::uuid[]) and status = 'revoking'
          order by id
            for update skip locked`,
        [ids],
      );
      const neverIssued: string[] = [];
      const failed = new Map<string, string>();
      // The lock is ours, so no issuance is in flight: no handle means the CA never issued it.
      const toRevoke = rows.filter((r) => (r.ca_ref == null ? (neverIssued.push(r.id), false) : true));

      // Serial unknown (never downloaded, asynchronous CA): ask the CA by handle.
      const unknown = toRevoke.filter((r) => r.serial == null);
      const fetched = await mapSettled(unknown, CA_PARALLELISM, (r) => ca.fetch(r.ca_ref!));
      const learnt: Row[] = [];
      fetched.forEach((res, i) => {
        const r = unknown[i];
        if (res.status === "rejected") failed.set(r.id, errorMessage(res.reason));
        else if (res.value.status === "issued") learnt.push({ ...r, serial: res.value.serial });
        else if (res.value.status === "failed") neverIssued.push(r.id);
        else failed.set(r.id, "the CA has not issued the certificate yet (pending); retrying");
      });
      if (learnt.length > 0) {
        await c.query("select gk_private.certificates_set_serials($1::uuid[], $2::text[])", [
          learnt.map((r) => r.id),
          learnt.map((r) => r.serial),
        ]);
      }

      const withSerial = [...toRevoke.filter((r) => r.serial != null), ...learnt];
      const done: string[] = [];
      for (const [reason, group] of groupBy(withSerial, (r) => r.revocation_reason)) {
        for (const [id, error] of await revokeGroup(ca, reason, group)) {
          if (error == null) done.push(id);
          else failed.set(id, error);
        }
      }

      await c.query("select gk_private.certificates_revoked($1::uuid[], $2::uuid[])", [done, neverIssued]);
      for (const [error, group] of groupByError(failed)) {
        await c.query("select gk_private.certificates_revoke_failed($1::uuid[], $2)", [group, error]);
      }
      return failed;
    });
    if (failures.size > 0) {
      // The job retries with graphile-worker's backoff; the rows show attempts and last_error.
      const [first] = failures.values();
      throw new Error(`${failures.size} of ${ids.length} revocations failed (first: ${first})`);
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
