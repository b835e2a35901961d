// The master key step of the startup sequence (src/cli/boot.ts): the process's SecretBox, under
// which secrets (CA keys, TUF online keys, parked private keys) are sealed at rest.
import { type SecretBox, secretBoxFromEnv } from "../lib/secrets.ts";
import type { CliContext, Database } from "./context.ts";

export async function loadMasterKey(ctx: CliContext, _db: Database): Promise<SecretBox> {
  return secretBoxFromEnv(process.env, ctx.config.home);
}
