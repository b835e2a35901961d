// A TCP proxy in front of a CA's HTTP API that forwards every request and, while `holding`,
// withholds the CA's answers: the CA has done the work (signed, stored), the caller never hears
// of it. `held` resolves when the first answer is withheld, so a test can SIGKILL the caller at
// exactly that point. Connections are cut when either side closes.
import net from "node:net";

export interface HoldingProxy {
  url: string;
  /** Resolves once an answer from the CA has been withheld. */
  held: Promise<void>;
  close(): Promise<void>;
}

export async function startHoldingProxy(target: string): Promise<HoldingProxy> {
  const to = new URL(target);
  const sockets = new Set<net.Socket>();
  let onHeld!: () => void;
  const held = new Promise<void>((r) => (onHeld = r));
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: to.hostname, port: Number(to.port) });
    for (const sock of [client, upstream]) {
      sockets.add(sock);
      sock.on("close", () => {
        sockets.delete(sock);
        client.destroy();
        upstream.destroy();
      });
      sock.on("error", () => sock.destroy());
    }
    client.pipe(upstream);
    upstream.on("data", () => onHeld()); // read and dropped: never written to the client
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    held,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
