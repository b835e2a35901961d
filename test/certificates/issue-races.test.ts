// What happens between the CA's signature and our record, held deterministically: the issue task
// is kept inside ca.issue() by a gate the test opens, or the CA signs and the answer is lost.
// Whatever the order, every certificate the CA signed ends revoked at the CA and on its CRL (read
// with openssl), and no platform statement waits for the CA.
import { describe, expect, it } from "vitest";
import { withTimeout } from "../../src/adapters/ca/timeout.ts";
import type { CertificateAuthority } from "../../src/adapters/ca/types.ts";
import { createTestDb } from "../helpers/db.ts";
import { clearJobs, jobs, runJobs, testServices } from "../helpers/jobs.ts";
import { certStatuses, ids, insertRobots, insertTeam } from "../helpers/fixtures/index.ts";
import { answerLost, crlSerials, gatedIssue, localCa, withIssue } from "./helpers/ca-fixtures.ts";

const db = await createTestDb();
// Claims and leases of a second, so a claim whose answer was lost runs out within the test.
await db.query(`alter database ${db.name} set groundskeeper.bin_lease = '1 second'`);
// …and in the pool's one session so far, which started before the ALTER.
await db.query("set groundskeeper.bin_lease = '1 second'");
const SHORT = 300; // ms: the CA call deadline of a lost attempt (claims last the lease plus this)
// …and of the attempts after it, whose claims must outlast a slow, loaded machine.
const LONG = 20_000;

async function credential(team: string): Promise<{ id: string; certs: string[] }> {
  const { rows } = await db.query("select id from gk_public.create_provisioning_credential($1, 'line')", [team]);
  const certs = await db.query("select id from gk_public.certificates where provisioning_credential_id = $1 order by id", [rows[0].id]);
  return { id: rows[0].id, certs: certs.rows.map((r) => r.id) };
}

async function certsOf(team: string) {
  return (await db.query("select * from gk_public.certificates where owner_team_id = $1 order by created_at, id", [team])).rows;
}

/** Every serial the CA signed under this team's certificate ids (its own record, not ours). */
async function caSerials(caName: string, certIds: string[]): Promise<string[]> {
  const { rows } = await db.query(
    "select serial from gk_private.local_ca_certificates where authority = $1 and request_key = any($2::text[]) and serial is not null order by serial",
    [caName, certIds],
  );
  return rows.map((r) => r.serial);
}

/** Waits until no claim is live and the rows are due, then runs the bin reconciler and the jobs. */
async function reconcileWhenDue(ca: CertificateAuthority, team: string) {
  await expect
    .poll(
      async () =>
        (
          await db.query(
            "select count(*)::int as n from gk_public.certificates where owner_team_id = $1 and status in ('issuing', 'revoking') and (claim_expires_at > now() or next_attempt_at > now())",
            [team],
          )
        ).rows[0].n,
      { timeout: 10_000, interval: 200 },
    )
    .toBe(0);
  await db.query("select gk_private.enqueue('bin__reconcile')");
  await runJobs(db, testServices({ ca }));
}

const modes = [
  { mode: "local CA", deferred: false },
  { mode: "deferred CA", deferred: true },
];

describe.each(modes)("issuance held inside the CA ($mode)", ({ deferred }) => {
  it.each([
    { what: "team deleted", act: (team: string, _cred: string) => db.query("delete from gk_public.teams where id = $1", [team]) },
    {
      what: "credential revoked",
      act: (_team: string, cred: string) => db.query("select gk_public.revoke_provisioning_credential($1)", [cred]),
    },
  ])("$what meanwhile: the statement returns at once, and what the CA signed is revoked and on the CRL", async ({ what, act }) => {
    const name = `held-${deferred ? "d" : "s"}-${what.split(" ")[1]}`;
    const real = localCa(db, name, { deferred });
    const gate = gatedIssue(real);
    const team = (await insertTeam(db, { name })).id;
    const cred = await credential(team);
    const issuing = runJobs(db, testServices({ ca: gate.ca }));
    await gate.entered; // the issue task is inside ca.issue() for the first certificate
    await act(team, cred.id); // no lock is held across the CA call: this returns while the CA is held
    expect(await certStatuses(db, cred.certs)).toEqual({ revoking: 2 });
    gate.release();
    await issuing;
    await runJobs(db, testServices({ ca: real }));
    const rows = await certsOf(team);
    expect(rows.map((r) => r.status)).toEqual(["revoked", "revoked"]);
    // The one the CA was signing is revoked with its real serial; the other never reached the CA.
    const signed = await caSerials(name, cred.certs);
    expect(signed).toHaveLength(1);
    expect(rows.filter((r) => r.never_issued)).toHaveLength(1);
    expect(rows.find((r) => !r.never_issued)!.serial).toBe(signed[0]);
    expect(await crlSerials(real)).toEqual(new Set(signed));
  });

  it("the record meets a team delete holding the credential (lock order): no deadlock, revoked and on the CRL", async () => {
    // The window: the platform's delete has locked the credential and not yet reached the
    // certificate, while the record of the credential's last certificate runs (its statement
    // trigger marks the credential issued). A test-only trigger holds the delete right there (an
    // advisory lock the test owns). Taking the certificate first (the old order) then deadlocks:
    // the worker's sessions never look for deadlocks within the test, the platform's after 50 ms,
    // so a cycle always fails the platform's DELETE.
    const name = `order-${deferred ? "d" : "s"}`;
    const real = localCa(db, name, { deferred });
    const gate = gatedIssue(real, { pass: 1 }); // the first certificate is recorded, the last one held
    const team = (await insertTeam(db, { name })).id;
    const cred = await credential(team);
    const HOLD = 7_340_981;
    await db.query(`alter database ${db.name} set deadlock_timeout = '10min'`);
    await db.query(`
      create or replace function public.test_hold_credential_delete() returns trigger language plpgsql as $$
      begin perform pg_advisory_xact_lock(${HOLD}); return old; end $$;
      create trigger _000_test_hold before delete on gk_public.provisioning_credentials
        for each row execute function public.test_hold_credential_delete();`);
    const holder = await db.pool.connect();
    const platform = await db.pool.connect();
    try {
      const issuing = runJobs(db, testServices({ ca: gate.ca }));
      await gate.entered;
      await holder.query("select pg_advisory_lock($1)", [HOLD]);
      const pid = (await platform.query("select pg_backend_pid() as pid")).rows[0].pid;
      await platform.query("begin");
      await platform.query("set local deadlock_timeout = '50ms'");
      const deleting = platform.query("delete from gk_public.teams where id = $1", [team]).then(
        () => null,
        (e: Error) => e,
      );
      const waiting = async (sql: string, arg: unknown) =>
        (await db.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and ${sql}`, [arg])).rows[0].n;
      // The delete holds the credential, waiting at the test's lock …
      await expect.poll(() => waiting("pid = $1 and wait_event = 'advisory'", pid), { timeout: 10_000, interval: 20 }).toBe(1);
      gate.release();
      // … and the record of the certificate the CA just signed waits for a lock too.
      await expect
        .poll(() => waiting("wait_event_type = 'Lock' and query like $1", "%certificate_issued%"), { timeout: 10_000, interval: 20 })
        .toBe(1);
      await holder.query("select pg_advisory_unlock($1)", [HOLD]);
      expect(await deleting).toBeNull(); // not "deadlock detected"
      await platform.query("commit");
      await issuing;
    } finally {
      await platform.query("rollback").catch(() => {});
      platform.release();
      holder.release();
      await db.query(`drop trigger _000_test_hold on gk_public.provisioning_credentials; alter database ${db.name} reset deadlock_timeout`);
    }
    await runJobs(db, testServices({ ca: real }));
    const rows = await certsOf(team);
    expect(rows.map((r) => r.status)).toEqual(["revoked", "revoked"]);
    expect(rows.map((r) => r.last_error)).toEqual([null, null]);
    const signed = await caSerials(name, cred.certs);
    expect(signed).toHaveLength(2);
    expect(await crlSerials(real)).toEqual(new Set(signed));
  });

  it("the CA signed and the answer was lost, then the team went: looked up by our id, revoked, on the CRL", async () => {
    const name = `lost-${deferred ? "d" : "s"}`;
    const real = localCa(db, name, { deferred });
    const team = (await insertTeam(db, { name })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    await db.query("select gk_public.request_certificate($1)", [robot]);
    await runJobs(db, testServices({ ca: withTimeout(answerLost(real), SHORT) }));
    const [lost] = await certsOf(team);
    expect(lost).toMatchObject({ status: "issuing", ca_ref: null, attempts: 1 });
    expect(lost.issue_attempted_at).not.toBeNull();
    expect(await caSerials(name, [lost.id])).toHaveLength(deferred ? 0 : 1); // deferred: pending at the CA

    await db.query("delete from gk_public.teams where id = $1", [team]);
    const ca = withTimeout(real, LONG);
    // While the lost attempt's claim runs nothing is concluded; afterwards the CA is asked. Never
    // "never issued", whichever the revoke job meets.
    await runJobs(db, testServices({ ca }));
    expect((await certsOf(team))[0].never_issued).toBe(false);
    await reconcileWhenDue(ca, team);
    const [done] = await certsOf(team);
    expect(done).toMatchObject({ status: "revoked", never_issued: false });
    const signed = await caSerials(name, [lost.id]);
    expect(signed).toEqual([done.serial]);
    expect(await crlSerials(real)).toEqual(new Set(signed));
  });
});

describe("an issuance whose answer was lost is retried", () => {
  it("CA-made key (lost with the attempt): the earlier certificate gets a row and is revoked, a new one is issued", async () => {
    const real = localCa(db, "retry-key");
    const team = (await insertTeam(db, { name: "retry-key" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    await db.query("select gk_public.request_certificate($1)", [robot]);
    await runJobs(db, testServices({ ca: withTimeout(answerLost(real), SHORT) }));
    const [first] = await caSerials("retry-key", [(await certsOf(team))[0].id]);
    const ca = withTimeout(real, LONG);
    await reconcileWhenDue(ca, team);
    const rows = await certsOf(team);
    expect(rows.map((r) => [r.status, r.robot_id != null])).toEqual([
      ["issued", true],
      ["revoked", false],
    ]);
    expect(rows[1]).toMatchObject({ serial: first, revocation_reason: "superseded" });
    expect(rows[0].serial).not.toBe(first);
    expect(await crlSerials(real)).toEqual(new Set([first]));
    const key = await db.query("select 1 from gk_private.certificate_private_keys where certificate_id = $1", [rows[0].id]);
    expect(key.rowCount).toBe(1); // the new certificate's key is parked
  });

  it("the holder's own key: the certificate the CA already signed is adopted, nothing signed twice", async () => {
    const real = localCa(db, "retry-own");
    const team = (await insertTeam(db, { name: "retry-own" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    const { publicKey } = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    const spki = Buffer.from(await crypto.subtle.exportKey("spki", publicKey)).toString("base64");
    const pem = `-----BEGIN PUBLIC KEY-----\n${spki}\n-----END PUBLIC KEY-----\n`;
    await db.query("select gk_public.request_certificate($1, $2)", [robot, pem]);
    await runJobs(db, testServices({ ca: withTimeout(answerLost(real), SHORT) }));
    await reconcileWhenDue(withTimeout(real, LONG), team);
    const rows = await certsOf(team);
    expect(rows).toHaveLength(1);
    expect(rows[0].status).toBe("issued");
    expect(await caSerials("retry-own", [rows[0].id])).toEqual([rows[0].serial]);
  });
});

describe("a CA that cannot be asked what it issued (as cfssl)", () => {
  it("the row stays visibly unresolved in the bin, not never_issued; the operator's answer revokes it", async () => {
    const real = localCa(db, "no-lookup");
    const team = (await insertTeam(db, { name: "no-lookup" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    await db.query("select gk_public.request_certificate($1)", [robot]);
    await runJobs(db, testServices({ ca: withTimeout(answerLost(real, { lookup: false }), SHORT) }));
    await db.query("delete from gk_public.teams where id = $1", [team]);
    const blind = withTimeout(
      withIssue(real, (r) => real.issue(r), { lookup: false }),
      LONG,
    );
    await reconcileWhenDue(blind, team);
    const [row] = await certsOf(team);
    expect(row).toMatchObject({ status: "revoking", unresolved: true, never_issued: false });
    const { rows: bin } = await db.query("select last_error from gk_public.bin where ref = $1", [row.id]);
    expect(bin[0].last_error).toMatch(/^unresolved: .*cannot be asked/);
    // The operator finds the certificate at the CA (its subject carries our id) and answers.
    const [serial] = await caSerials("no-lookup", [row.id]);
    await db.query("select gk_public.resolve_certificate($1, $2)", [row.id, serial]);
    await runJobs(db, testServices({ ca: blind }));
    expect((await certsOf(team))[0]).toMatchObject({ status: "revoked", serial, never_issued: false });
    expect(await crlSerials(real)).toEqual(new Set([serial]));
  });
});

describe("a retried issuance at a CA that cannot be asked what it issued (as cfssl)", () => {
  it("is held back as unresolved, not signed again; retryBinItem asks again; the operator's 'nothing' issues anew; an owner going hands it to the revoke path", async () => {
    const real = localCa(db, "no-lookup-retry");
    const blind = (issue: CertificateAuthority["issue"], ms: number) => withTimeout(withIssue(real, issue, { lookup: false }), ms);
    const team = (await insertTeam(db, { name: "no-lookup-retry" })).id;
    const [kept, gone] = ids(await insertRobots(db, { team, count: 2 }));
    await db.query("select gk_public.request_certificate(r) from unnest($1::uuid[]) r", [[kept, gone]]);
    // The first attempt times out without the CA ever signing: only the operator can know that.
    await runJobs(db, testServices({ ca: blind(() => new Promise(() => {}), SHORT) }));
    const ca = blind((r) => real.issue(r), LONG);
    await reconcileWhenDue(ca, team);
    const held = await certsOf(team);
    expect(held.map((r) => [r.status, r.unresolved, r.ca_ref])).toEqual([
      ["issuing", true, null],
      ["issuing", true, null],
    ]);
    expect(
      await caSerials(
        "no-lookup-retry",
        held.map((r) => r.id),
      ),
    ).toEqual([]); // nothing signed
    const { rows: bin } = await db.query("select ref, last_error, overdue from gk_public.bin where team_id = $1 order by ref", [team]);
    expect(bin.map((b) => [b.last_error.startsWith("unresolved: "), b.overdue])).toEqual([
      [true, false],
      [true, false],
    ]);
    const [keptRow, goneRow] = held.sort((a, b) => (a.robot_id === kept ? -1 : b.robot_id === kept ? 1 : 0));

    // Retried by hand: the CA still cannot tell, so it is held back again.
    await db.query("select gk_public.retry_bin_item('certificate', $1)", [keptRow.id]);
    await runJobs(db, testServices({ ca }));
    expect((await certsOf(team)).find((r) => r.id === keptRow.id)).toMatchObject({ status: "issuing", unresolved: true });

    // The operator saw nothing at the CA under this id: issued anew, once.
    await db.query("select gk_public.resolve_certificate($1)", [keptRow.id]);
    await runJobs(db, testServices({ ca }));
    const issued = (await certsOf(team)).find((r) => r.id === keptRow.id);
    expect(issued).toMatchObject({ status: "issued", unresolved: false, last_error: null });
    expect(await caSerials("no-lookup-retry", [keptRow.id])).toEqual([issued.serial]);

    // The other one's robot goes: the revoke path asks the same question and cannot conclude either.
    await db.query("delete from gk_public.robots where id = $1", [gone]);
    await reconcileWhenDue(ca, team);
    const [revoking] = (await certsOf(team)).filter((r) => r.id === goneRow.id);
    expect(revoking).toMatchObject({ status: "revoking", unresolved: true, never_issued: false });
    expect(revoking.last_error).toMatch(/^unresolved: an issuance request .* may have reached the CA/);
    await expect(db.query("select gk_public.resolve_certificate($1, $2)", [goneRow.id, issued.serial])).rejects.toThrow(
      /already belongs to a certificate row/,
    );
  });
});

describe("a CA that hangs", () => {
  it("the call times out (the job's error says so), and a robot DELETE meanwhile returns at once", async () => {
    const real = localCa(db, "hung");
    const hung = withTimeout(
      withIssue(real, () => new Promise(() => {})),
      SHORT,
    );
    await clearJobs(db); // earlier tests' failed issue jobs would be read below as this one's
    const team = (await insertTeam(db, { name: "hung" })).id;
    const [robot] = ids(await insertRobots(db, { team, count: 1 }));
    await db.query("select gk_public.request_certificate($1)", [robot]);
    const issuing = runJobs(db, testServices({ ca: hung }));
    await expect.poll(async () => (await certsOf(team))[0].claim_id, { timeout: 10_000, interval: 20 }).not.toBeNull();
    await db.query("delete from gk_public.robots where id = $1", [robot]); // does not wait for the CA
    await issuing;
    expect((await jobs(db, "certificates__issue"))[0].last_error).toMatch(/local CA: issue timed out after 300 ms/);
    const [row] = await certsOf(team);
    expect(row).toMatchObject({ status: "revoking", never_issued: false });
    expect(row.issue_attempted_at).not.toBeNull();
    await reconcileWhenDue(withTimeout(real, LONG), team);
    // It never reached the CA, and the CA says so when asked by our id.
    expect((await certsOf(team))[0]).toMatchObject({ status: "revoked", never_issued: true });
  });
});
