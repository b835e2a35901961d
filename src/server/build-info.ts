// Labels of the gk_build_info metric: which build of Groundskeeper answers. The version is
// package.json's; GK_BUILD_COMMIT (set by an image build, for example) adds the commit.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_JSON = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../package.json");

export function buildInfo(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const { version } = JSON.parse(fs.readFileSync(PACKAGE_JSON, "utf8")) as { version: string };
  return { version, commit: env.GK_BUILD_COMMIT ?? "unknown", node_version: process.version };
}
