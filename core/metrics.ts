/**
 * Prometheus text metrics (exposition format 0.0.4), and the opt-in HTTP
 * listener that serves them at /metrics. Metrics carry no secrets and no
 * file names; the listener is separate from the backup server's TLS port.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

type Labels = Record<string, string>;

interface Family {
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly values: Map<string, { labels: Labels; value: number }>;
}

const key = (labels: Labels): string => JSON.stringify(Object.entries(labels).sort());
const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export class Metrics {
  private readonly families = new Map<string, Family>();
  /** Called before each scrape, for values computed on demand. */
  private readonly collectors: (() => Promise<void>)[] = [];

  private family(name: string, help: string, type: Family['type']): Family {
    let f = this.families.get(name);
    if (!f) this.families.set(name, (f = { help, type, values: new Map() }));
    return f;
  }

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    this.family(name, help, 'gauge').values.set(key(labels), { labels, value });
  }

  inc(name: string, help: string, by = 1, labels: Labels = {}): void {
    const f = this.family(name, help, 'counter');
    const k = key(labels);
    f.values.set(k, { labels, value: (f.values.get(k)?.value ?? 0) + by });
  }

  onCollect(fn: () => Promise<void>): void {
    this.collectors.push(fn);
  }

  async text(): Promise<string> {
    for (const c of this.collectors) await c().catch(() => {});
    const out: string[] = [];
    for (const [name, f] of [...this.families].sort(([a], [b]) => a.localeCompare(b))) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      for (const { labels, value } of f.values.values()) {
        const l = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(',');
        out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
      }
    }
    return out.join('\n') + '\n';
  }

  /** Serves GET /metrics on host:port; returns the bound port and a close function. */
  async listen(host: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
    const server: Server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      void this.text().then((t) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(t));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return {
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }
}
