// The certificates area's periodic reconcilers: expiry (certificates, provisioning credentials)
// and the CRL refresh, each recording an activation. (Retention: test/retention/.)
import { describe, expect, it } from "vitest";
import { createTestDb } from "../helpers/db.ts";
import { runJobs, testServices } from "../helpers/jobs.ts";
import { ids, insertCertificates, insertProvisioningCredentials, scenario, withRobots, withTeam } from "../helpers/fixtures/index.ts";
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
    const s = await scenario(db, withTeam({ name: "expiry" }), withRobots(3));
    const team = s.team.id;
    const [r1, r2, r3] = ids(s.robots);
    // Past not_after: issued (expires) and still issuing (does not); future not_after: issued.
    const certs = [
      ...(await insertCertificates(db, { robots: [r1], state: "issued", notAfter: "-1 second" })),
      ...(await insertCertificates(db, { robots: [r2], state: "issued", notAfter: "1 day" })),
      ...(await insertCertificates(db, { robots: [r3], state: "issuing", notAfter: "-1 second" })),
    ];
    // Credentials alone (their certificates would be expired by the same sweep).
    const creds = [
      ...(await insertProvisioningCredentials(db, { team, names: ["old"], expiresAt: "-1 minute", certificates: false })),
      ...(await insertProvisioningCredentials(db, { team, names: ["new"], expiresAt: "1 day", certificates: false })),
      ...(await insertProvisioningCredentials(db, {
        team,
        names: ["revoked"],
        state: "revoked",
        expiresAt: "-1 minute",
        certificates: false,
      })),
    ];
    expect(creds).toHaveLength(3);
    const act = await runCron("certificates__expire");
    expect(act).toMatchObject({ status: "succeeded", counts: { certificates_expired: 1, provisioning_credentials_expired: 1 } });
    const { rows } = await db.query(
      "select status from gk_public.certificates c join unnest($1::uuid[]) with ordinality u(id, n) on u.id = c.id order by u.n",
      [ids(certs)],
    );
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
    // Nothing revoked since, CRL young: nothing regenerated, and the activation says so.
    await db.query("select gk_private.enqueue('certificates__refresh_crl')");
    await runJobs(db, testServices({ ca }));
    const { rows: again } = await db.query(
      "select status, counts, details->>'crl' as crl from gk_public.activations where task = 'certificates__refresh_crl' order by id desc limit 1",
    );
    expect(again).toEqual([{ status: "succeeded", counts: { refreshed: 0 }, crl: "current" }]);
    const { rows: b } = await db.query("select crl_pem from gk_private.local_ca_authorities where name = 'refresh'");
    expect(b[0].crl_pem).toBe(a[0].crl_pem);
  });
});
