// Issues requested certificates at the CA. Per certificate: claim it (committed, no lock held
// afterwards), call the CA with the certificate id as request key, record the outcome with one
// call conditional on the claim (sql/302_certificate_claims.sql). An owner deleted meanwhile
// never waits for us: the row turns 'revoking' at once, and our record hands what the CA signed to
// the revoke path. An earlier attempt whose answer was lost is looked up at the CA first; a CA
// that cannot be asked (cfssl) is not asked to sign again: the row turns unresolved instead.
import crypto from "node:crypto";
import type { JobHelpers } from "graphile-worker";
import { z } from "zod";
import { caTimeoutMs } from "../src/adapters/ca/timeout.ts";
import {
  CaNotSentError,
  CaRequestError,
  type CertificateAuthority,
  type CertificateProfile,
  type IssueResult,
  type SubjectExtra,
} from "../src/adapters/ca/types.ts";
import { certificateKeyContext } from "../src/certificates/parked-keys.ts";
import { recordWithRetry } from "../src/certificates/record.ts";
import { errorMessage } from "../src/lib/errors.ts";
import { requireService, type Services } from "../src/services.ts";
import { defineTask } from "../src/worker/define-task.ts";

// After this many failed attempts, stop retrying (the row shows status 'failed' and last_error).
const MAX_REJECTIONS = 10;

const UNRESOLVED =
  "unresolved: an earlier issuance request for this certificate may have reached the CA, and this CA cannot be asked what it issued under the certificate's id, so it is not asked to sign again; check the CA and answer with resolve_certificate";

const NO_SECRETS = "the CA generates this certificate's key pair, but no SecretBox (master key) is configured in this worker to keep it";

interface Claimed {
  outcome: "claimed" | "busy" | "gone" | "no_secrets";
  owner_id: string;
  profile: CertificateProfile;
  public_key_pem: string | null;
  csr_pem: string | null;
  not_after: Date;
  attempts: number;
  attempted_before: boolean;
}

export default defineTask({
  payload: z.object({ ids: z.array(z.uuid()).min(1).max(500) }).strict(),
  async run({ ids }, { services, helpers }) {
    const ca = requireService(services, "ca");
    const errors: string[] = [];
    for (const id of ids) {
      const error = await issueOne(ca, services, helpers, id);
      if (error) errors.push(`${id}: ${error}`);
    }
    if (errors.length > 0) throw new Error(`${errors.length} of ${ids.length} issuances failed (first: ${errors[0]})`);
  },
});

async function issueOne(ca: CertificateAuthority, services: Services, helpers: JobHelpers, id: string): Promise<string | null> {
  const claim = crypto.randomUUID();
  const timeout = `${caTimeoutMs(ca)} milliseconds`;
  const { rows } = await helpers.query<Claimed>("select * from gk_private.certificate_claim_issue($1, $2, $3::interval, $4)", [
    id,
    claim,
    timeout,
    services.secrets != null,
  ]);
  const row = rows[0]!;
  if (row.outcome === "no_secrets") {
    await helpers.query("select gk_private.certificate_issue_failed($1, null, $2, $3, true)", [
      id,
      NO_SECRETS,
      row.attempts + 1 >= MAX_REJECTIONS,
    ]);
    return NO_SECRETS;
  }
  if (row.outcome !== "claimed") return null; // issued, revoked, unresolved, or another attempt holds it
  if (row.attempted_before && !ca.lookup) {
    // A second signature would leave the first one valid at the CA with no row: an operator decides.
    await recordWithRetry(() => helpers.query("select gk_private.certificate_issue_unresolved($1, $2, $3)", [id, claim, UNRESOLVED]));
    return null;
  }
  const ownKey = row.public_key_pem != null || row.csr_pem != null;
  // Whether every earlier attempt is accounted for (none was made, or the CA was asked about it).
  let accounted = !row.attempted_before;
  let res: IssueResult;
  try {
    const earlier = row.attempted_before ? await adoptEarlier(ca, helpers, id, claim, ownKey) : null;
    if (earlier === "recorded") return null;
    accounted = true;
    // What the certificate encodes besides its owner (a robot's team, attributes: sql/630).
    const { rows: subject } = await helpers.query<{ subject: SubjectExtra | null }>(
      "select subject from gk_public.certificates where id = $1",
      [id],
    );
    res = await ca.issue({
      commonName: row.owner_id,
      profile: row.profile,
      ...(subject[0]?.subject ? { subject: subject[0].subject } : {}),
      notAfter: row.not_after,
      requestKey: id,
      ...(row.public_key_pem ? { publicKeyPem: row.public_key_pem } : {}),
      ...(row.csr_pem ? { csrPem: row.csr_pem } : {}),
    });
  } catch (e) {
    // The CA refusing is final and nothing exists there; a request that never left (connection
    // refused) signed nothing either. Anything else (timed out, connection lost) may still have
    // been signed, so the claim runs out by itself and the retry counts as one after a lost answer.
    const refused = e instanceof CaRequestError;
    const nothingSigned = refused || e instanceof CaNotSentError;
    await recordWithRetry(() =>
      helpers.query("select gk_private.certificate_issue_failed($1, $2, $3, $4, $5, $6)", [
        id,
        claim,
        errorMessage(e),
        refused || row.attempts + 1 >= MAX_REJECTIONS,
        nothingSigned,
        nothingSigned && accounted,
      ]),
    );
    return errorMessage(e);
  }
  // A generated key is parked sealed (bound to this certificate) by the statement that records the
  // certificate issued: never issued with its key lost.
  const sealed = res.privateKeyPem && services.secrets ? services.secrets.seal(res.privateKeyPem, certificateKeyContext(id)) : null;
  await recordWithRetry(() =>
    helpers.query("select gk_private.certificate_issued($1, $2, $3, $4, $5, $6, $7, $8)", [
      id,
      claim,
      res.caRef,
      res.serial,
      res.pem ?? null,
      res.notBefore ?? null,
      res.notAfter ?? null,
      sealed,
    ]),
  );
  return null;
}

/**
 * An earlier attempt sent a request and lost the answer. Ask the CA what it issued under our id:
 * a certificate for the holder's own key is adopted; one whose generated key died with that
 * attempt gets a row of its own and is revoked. (A CA that cannot be asked never gets here: the
 * row turns unresolved instead.)
 */
async function adoptEarlier(
  ca: CertificateAuthority,
  helpers: JobHelpers,
  id: string,
  claim: string,
  ownKey: boolean,
): Promise<"recorded" | null> {
  const found = (await ca.lookup!(id)).filter((f) => f.status !== "revoked");
  if (found.length === 0) return null;
  const adopt = ownKey ? found.find((f) => f.status === "issued") : undefined;
  const orphans = found.filter((f) => f !== adopt);
  if (orphans.length > 0) {
    await helpers.query("select gk_private.certificate_orphans($1, $2::text[], $3::text[])", [
      id,
      orphans.map((o) => o.caRef),
      orphans.map((o) => o.serial),
    ]);
  }
  if (!adopt) return null;
  const got = await ca.fetch(adopt.caRef);
  if (got.status !== "issued") return null;
  await recordWithRetry(() =>
    helpers.query("select gk_private.certificate_issued($1, $2, $3, $4, $5, $6, $7, null)", [
      id,
      claim,
      adopt.caRef,
      got.serial,
      got.pem,
      got.notBefore ?? null,
      got.notAfter,
    ]),
  );
  return "recorded";
}
