// A TCP proxy in front of a real server (the S3-protocol test server) that can stall downloads:
// with stallAfter(n) set, each connection forwards the first n bytes of the server's answers and
// then holds the rest (the socket stays open, as on a link that stopped moving) until release().
// For the tests of a node killed mid-download and of the node's download deadline.
import net from "node:net";

export interface StallProxy {
  url: string;
  /** Connections opened from now on hold the server's bytes after the first `bytes`. */
  stallAfter(bytes: number): void;
  /** Forwards everything again, held bytes included. */
  release(): void;
  close(): Promise<void>;
}

export async function startStallProxy(target: { host: string; port: number }): Promise<StallProxy> {
  let limit = Number.POSITIVE_INFINITY;
  const held = new Set<() => void>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    const connectionLimit = limit;
    let sent = 0;
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (sent >= connectionLimit) {
        upstream.pause();
        const resume = () => {
          held.delete(resume);
          client.write(chunk);
          upstream.pipe(client);
          upstream.resume();
        };
        held.add(resume);
        upstream.removeAllListeners("data");
        return;
      }
      const room = connectionLimit - sent;
      const now = chunk.length <= room ? chunk : chunk.subarray(0, room);
      sent += now.length;
      client.write(now);
      if (now.length < chunk.length) {
        upstream.pause();
        const rest = chunk.subarray(now.length);
        const resume = () => {
          held.delete(resume);
          client.write(rest);
          upstream.pipe(client);
          upstream.resume();
        };
        held.add(resume);
        upstream.removeAllListeners("data");
      }
    });
    upstream.on("end", () => client.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stallAfter(bytes) {
      limit = bytes;
    },
    release() {
      limit = Number.POSITIVE_INFINITY;
      for (const r of [...held]) r();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
