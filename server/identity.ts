/**
 * The server's TLS identity: a certificate and key given by the operator
 * (--cert/--key), or on first start a generated key pair and self-signed
 * certificate (ECDSA P-256, ten years), kept in the state directory with
 * mode 0600. Clients pin it by the fingerprint the server prints.
 */
import * as fs from 'node:fs/promises';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { generate } from 'selfsigned';
import { fingerprintOfPem } from '../core/fingerprint.ts';

export interface TlsIdentity {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 of the certificate, colon-separated uppercase hex. */
  readonly fingerprint: string;
  /** True when this start generated it. */
  readonly generated: boolean;
}

const VALID_YEARS = 10;

export async function loadIdentity(stateDir: string, certFile?: string, keyFile?: string): Promise<TlsIdentity> {
  if (certFile || keyFile) {
    if (!certFile || !keyFile) throw new Error('--cert and --key go together');
    const [cert, key] = await Promise.all([fs.readFile(certFile, 'utf8'), fs.readFile(keyFile, 'utf8')]);
    return { cert, key, fingerprint: fingerprintOfPem(cert), generated: false };
  }
  const certPath = path.join(stateDir, 'tls-cert.pem');
  const keyPath = path.join(stateDir, 'tls-key.pem');
  try {
    const [cert, key] = await Promise.all([fs.readFile(certPath, 'utf8'), fs.readFile(keyPath, 'utf8')]);
    return { cert, key, fingerprint: fingerprintOfPem(cert), generated: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const now = new Date();
  const until = new Date(now);
  until.setFullYear(now.getFullYear() + VALID_YEARS);
  const name = hostname();
  const pems = await generate([{ name: 'commonName', value: `stowage server ${name}` }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: now,
    notAfterDate: until,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: name },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  // Key first, create-only: two servers starting at once cannot mix halves.
  await fs.writeFile(keyPath, pems.private, { mode: 0o600, flag: 'wx' });
  await fs.writeFile(certPath, pems.cert, { mode: 0o600, flag: 'wx' });
  return { cert: pems.cert, key: pems.private, fingerprint: fingerprintOfPem(pems.cert), generated: true };
}
