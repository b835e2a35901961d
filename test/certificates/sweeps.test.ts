// The certificates area's periodic reconcilers: expiry (certificates, provisioning credentials)
// and the CRL refresh, each recording an activation. (Retention: test/retention/.)
import { describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";
import { makeRobots, makeTeam } from "./helpers/fixtures.ts";
import { localCa } from "./helpers/ca-fixtures.ts";

const db = await createTestDb();

async function runCron(task: string) {
  await db.query("select gk_private.enqueue($1)", [task]);
  await runJobs(db, testServices());
  const { rows } = await db.query("select * from gk_public.activations where task = $1 order by id desc limit 1", [task]);
  return rows[0];
}

describe("expiry sweep", () => {
  it("marks issued certificates and live credentials whose not_after passed as expired, nothing else", async () => {
    const team = await makeTeam(db, "expiry");
    const [r1, r2, r3] = await makeRobots(db, team, 3);
    const { rows: certs } = await db.query(
      `insert into gk_public.certificates (owner_team_id, robot_id, profile, status, ca_ref, not_after)
       values ($1, $2, 'robot', 'issued', 'a', now() - interval '1 second'),
              ($1, $3, 'robot', 'issued', 'b', now() + interval '1 day'),
              ($1, $4, 'robot', 'issuing', null, now() - interval '1 second')
       returning id`,
      [team, r1, r2, r3],
    );
    const { rows: creds } = await db.query(
      `insert into gk_public.provisioning_credentials (team_id, name, status, expires_at, revoked_at)
       values ($1, 'old', 'issued', now() - interval '1 minute', null), ($1, 'new', 'issued', now() + interval '1 day', null),
              ($1, 'revoked', 'revoked', now() - interval '1 minute', now())
       returning id`,
      [team],
    );
    expect(creds).toHaveLength(3);
    const act = await runCron("certificates__expire");
    expect(act).toMatchObject({ status: "succeeded", counts: { certificates_expired: 1, provisioning_credentials_expired: 1 } });
    const { rows } = await db.query("select status from gk_public.certificates where id = any($1::uuid[]) order by ca_ref nulls last", [
      certs.map((c) => c.id),
    ]);
    expect(rows.map((r) => r.status)).toEqual(["expired", "issued", "issuing"]);
    const { rows: cs } = await db.query(
      "select name, status, expired_at is not null as has_at from gk_public.provisioning_credentials where team_id = $1 order by name",
      [team],
    );
    expect(cs).toEqual([
      { name: "new", status: "issued", has_at: false },
      { name: "old", status: "expired", has_at: true },
      { name: "revoked", status: "revoked", has_at: false },
    ]);
    // An expired certificate whose owner goes needs no revocation.
    await db.query("delete from gk_public.robots where id = $1", [r1]);
    expect((await db.query("select status from gk_public.certificates where id = $1", [certs[0].id])).rows[0].status).toBe("expired");
    // Idempotent: a second activation finds nothing.
    expect((await runCron("certificates__expire")).counts).toEqual({ certificates_expired: 0, provisioning_credentials_expired: 0 });
  });

  it("the sweep can use the index on (status, not_after)", async () => {
    // Few rows here, so the planner would rightly scan the table; forbid that to see the index serves it.
    const c = await db.pool.connect();
    let rows: any[] = [];
    try {
      await c.query("begin; set local enable_seqscan = off");
      ({ rows } = await c.query(
        "explain (format json) update gk_public.certificates c set status = 'expired' where c.status = 'issued' and c.not_after <= now()",
      ));
      await c.query("rollback");
    } finally {
      c.release();
    }
    const plan = JSON.stringify(rows[0]["QUERY PLAN"]);
    expect(plan).toMatch(/certificates_status_not_after_idx/);
  });
});

describe("CRL refresh", () => {
  it("regenerates the CA's CRL on its schedule after revocations, recording an activation", async () => {
    const ca = localCa(db, "refresh");
    const issued = await ca.issue({ commonName: "x", profile: "robot", notAfter: new Date(Date.now() + 86400_000) });
    const before = await ca.crlPem();
    await ca.revoke(issued.serial!, "keyCompromise");
    await db.query("select gk_private.enqueue('certificates__refresh_crl')");
    await runJobs(db, testServices({ ca }));
    const { rows } = await db.query("select status, counts from gk_public.activations where task = 'certificates__refresh_crl'");
    expect(rows).toEqual([{ status: "succeeded", counts: { refreshed: 1 } }]);
    const { rows: a } = await db.query("select crl_pem from gk_private.local_ca_authorities where name = 'refresh'");
    expect(a[0].crl_pem).not.toBe(before);
  });
});
