#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript run directly by Node's type stripping (Node >= 22.18).
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `groundskeeper needs Node >= 22.18 (found ${process.versions.node}); run it through npm (npm start / npx groundskeeper), which uses the project's own Node runtime.`,
  );
  process.exit(1);
}
await import("../src/cli/main.ts");
