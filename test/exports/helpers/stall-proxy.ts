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
    // Forwards up to the connection's limit; the rest of the chunk is held, and the stream
    // paused, until release() writes it and pipes the remainder.
    const onData = (chunk: Buffer) => {
      const now = chunk.subarray(0, Math.max(0, connectionLimit - sent));
      sent += now.length;
      if (now.length) client.write(now);
      if (now.length === chunk.length) return;
      upstream.pause();
      upstream.off("data", onData);
      const resume = () => {
        held.delete(resume);
        client.write(chunk.subarray(now.length));
        upstream.pipe(client);
        upstream.resume();
      };
      held.add(resume);
    };
    upstream.on("data", onData);
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
