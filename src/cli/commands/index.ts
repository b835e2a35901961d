// The platform's CLI commands (areas add theirs through their manifest's `commands`). To add
// one: write src/cli/commands/<name>.ts exporting a default `(program: Command) => void` that
// calls program.command(...), and add it to this list. These files are loaded by every spawn,
// `--help` included: they import their runtime modules inside the action (docs/conventions.md).
import type { Command } from "commander";
import agent from "./agent.ts";
import migrate from "./migrate.ts";
import serve from "./serve.ts";
import start from "./start.ts";
import status from "./status.ts";
import token from "./token.ts";
import worker from "./worker.ts";

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [start, migrate, worker, serve, token, status, agent];
