// groundskeeper migrate: worker schema, versioned migrations, stored logic (run once per release).
import type { Command } from "commander";

export default function register(program: Command): void {
  program
    .command("migrate")
    .description("apply the job-queue schema, pending migrations and changed stored logic, then exit")
    .action(async (_opts, cmd: Command) => {
      const { cliContext, describeDatabase, openDatabase } = await import("../context.ts");
      const ctx = cliContext(cmd);
      const { migrate } = await import("../../db/migrate.ts");
      // Open without migrating, then migrate here so we can report what ran.
      const db = await openDatabase(ctx, { migrate: false });
      try {
        const r = await migrate(db.url);
        console.log(`database: ${describeDatabase(db)}`);
        console.log(r.migrationsRun.length ? `migrations applied: ${r.migrationsRun.join(", ")}` : "migrations: up to date");
        console.log(r.sqlFilesApplied.length ? `stored logic applied: ${r.sqlFilesApplied.join(", ")}` : "stored logic: up to date");
      } finally {
        await db.close();
      }
    });
}
