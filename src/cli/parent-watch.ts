// Started by npm (`npm start`, `npx groundskeeper …`: npm sets npm_command), the process runs
// under `sh -c`, and a SIGTERM to npm reaches only that shell, which exits without passing it on:
// we would be left running with the embedded database. So under npm the parent going away (our
// parent pid changes when we are re-parented) is a stop like SIGTERM. Outside npm (a supervisor,
// nohup, a container's init) the parent is left alone: a shell that exits is no reason to stop.
const CHECK_EVERY_MS = 500;

export function watchParent(onGone: () => void, env: NodeJS.ProcessEnv = process.env): void {
  if (!env.npm_command) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone();
  }, CHECK_EVERY_MS);
  timer.unref();
}
