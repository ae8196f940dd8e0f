/**
 * A TCP proxy that delays every chunk by a fixed time each way, for
 * `npm run bench -- --rtt-ms N`: the backup server "in another place",
 * measured on one machine. TLS passes through it untouched. It runs as its
 * own process (the benchmark blocks on its children):
 *
 *   node bench/latency-proxy.ts TARGET_PORT ONE_WAY_MS   → prints its port
 */
import * as net from 'node:net';

const [targetPort, oneWayMs] = process.argv.slice(2).map(Number) as [number, number];
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
server.listen(0, '127.0.0.1', () => console.log((server.address() as net.AddressInfo).port));
