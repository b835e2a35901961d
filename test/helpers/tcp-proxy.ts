// A TCP proxy in front of PostgreSQL, for outage tests: stop() cuts every connection and stops
// listening (clients get ECONNREFUSED, as when the database host goes away); start() listens
// again on the same port.
import net from "node:net";

export interface TcpProxy {
  port: number;
  /** `databaseUrl` with its host and port replaced by the proxy's. */
  url(databaseUrl: string): string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Where `databaseUrl` connects: a TCP host and port, or a Unix socket (`?host=/dir`). */
function target(databaseUrl: string): net.NetConnectOpts {
  const u = new URL(databaseUrl);
  const port = Number(u.port || 5432);
  const socketDir = u.searchParams.get("host");
  if (socketDir?.startsWith("/")) return { path: `${socketDir}/.s.PGSQL.${port}` };
  return { host: u.hostname || "127.0.0.1", port };
}

export async function startTcpProxy(databaseUrl: string): Promise<TcpProxy> {
  const to = target(databaseUrl);
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer((client) => {
        const upstream = net.connect(to);
        for (const sock of [client, upstream]) {
          sockets.add(sock);
          sock.on("close", () => sockets.delete(sock));
          sock.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });
  await listen();
  return {
    get port() {
      return port;
    },
    url(db) {
      const u = new URL(db);
      u.searchParams.delete("host");
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    start: listen,
    async stop() {
      const s = server;
      server = undefined;
      for (const sock of sockets) sock.destroy();
      if (s) await new Promise<void>((r) => s.close(() => r()));
    },
  };
}
