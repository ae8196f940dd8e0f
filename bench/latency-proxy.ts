/**
 * A TCP proxy that delays every chunk by a fixed time each way, for
 * `npm run bench -- --rtt-ms N`: the backup server "in another place",
 * measured on one machine. TLS passes through it untouched.
 */
import * as net from 'node:net';

export async function startLatencyProxy(targetPort: number, oneWayMs: number): Promise<{ port: number; close(): void }> {
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const forward = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (d: Buffer) => setTimeout(() => to.write(d), oneWayMs));
    };
    forward(client, upstream);
    forward(upstream, client);
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => setTimeout(() => b.destroy(), oneWayMs));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}
