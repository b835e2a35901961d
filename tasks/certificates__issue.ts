// Issues requested certificates at the CA, one row lock per certificate held across the CA call:
// an owner deleted meanwhile waits for the lock, then finds the certificate issued and sends it
// to revocation; a certificate already 'revoking' when we get the lock is never issued at all.
import { z } from "zod";
import { CaRequestError, type CertificateProfile, type SubjectExtra } from "../src/adapters/ca/types.ts";
import { certificateKeyContext } from "../src/certificates/parked-keys.ts";
import { errorMessage } from "../src/lib/errors.ts";
import { inJobTransaction } from "../src/worker/tx.ts";
import { requireService } from "../src/services.ts";
import { defineTask } from "../src/worker/define-task.ts";

// After this many failed attempts, stop retrying (the row shows status 'failed' and last_error).
const MAX_REJECTIONS = 10;

const NO_SECRETS = "the CA generates this certificate's key pair, but no SecretBox (master key) is configured in this worker to keep it";

interface Row {
  id: string;
  status: string;
  ca_ref: string | null;
  owner_id: string;
  profile: CertificateProfile;
  subject: SubjectExtra | null;
  public_key_pem: string | null;
  csr_pem: string | null;
  not_after: Date;
  attempts: number;
}

export default defineTask({
  payload: z.object({ ids: z.array(z.uuid()).min(1).max(500) }).strict(),
  async run({ ids }, { services, helpers }) {
    const ca = requireService(services, "ca");
    const errors: string[] = [];
    for (const id of ids) {
      await inJobTransaction(helpers, async (c) => {
        const { rows } = await c.query<Row>(
          `select id, status, ca_ref, coalesce(robot_id, provisioning_credential_id, team_id, worker_id, controller_id, owner_team_id)::text as owner_id,
                  profile, subject, public_key_pem, csr_pem, not_after, attempts
             from gk_public.certificates where id = $1 for update`,
          [id],
        );
        const row = rows[0];
        if (!row) return;
        if (row.status === "revoking" && row.ca_ref == null) {
          // Its owner went before issuance started: nothing exists at the CA to revoke.
          await c.query("select gk_private.certificates_revoked('{}'::uuid[], array[$1::uuid])", [id]);
          return;
        }
        if (row.status !== "issuing") return;
        const caMakesKey = !row.public_key_pem && !row.csr_pem;
        try {
          // The CA would generate a key pair we could not keep: refuse before creating it there.
          if (caMakesKey && !services.secrets) throw new Error(NO_SECRETS);
          const res = await ca.issue({
            commonName: row.owner_id,
            profile: row.profile,
            ...(row.subject ? { subject: row.subject } : {}),
            notAfter: row.not_after,
            ...(row.public_key_pem ? { publicKeyPem: row.public_key_pem } : {}),
            ...(row.csr_pem ? { csrPem: row.csr_pem } : {}),
          });
          // A generated key is parked sealed (bound to this certificate) in the same transaction
          // that marks the certificate issued: never issued with its key lost.
          let sealed: string | null = null;
          if (res.privateKeyPem) {
            if (!services.secrets) throw new Error(NO_SECRETS);
            sealed = services.secrets.seal(res.privateKeyPem, certificateKeyContext(id));
          }
          await c.query("select gk_private.certificate_issued_with_key($1, $2, $3, $4, $5)", [
            id,
            res.caRef,
            res.serial,
            res.pem ?? null,
            sealed,
          ]);
        } catch (e) {
          // The CA refusing the request is final; anything else (unreachable, 5xx) is retried a while.
          const permanent = e instanceof CaRequestError || row.attempts + 1 >= MAX_REJECTIONS;
          await c.query("select gk_private.certificate_issue_failed($1, $2, $3)", [id, errorMessage(e), permanent]);
          errors.push(`${id}: ${errorMessage(e)}`);
        }
      });
    }
    if (errors.length > 0) throw new Error(`${errors.length} of ${ids.length} issuances failed (first: ${errors[0]})`);
  },
});
