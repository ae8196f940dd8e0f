/**
 * Client certificates (mutual TLS): the server's own CA issues one
 * certificate per host, scoped like a token to one repository and one
 * role, and revocable. `stowage serve client add HOST --repo NAME --role R`
 * writes HOST.key (0600) and HOST.crt for the host; the server keeps the CA
 * key, and a record per certificate by serial number, in its state
 * directory. Keys are Ed25519 (Node's TLS accepts them for client
 * authentication in TLS 1.2 and 1.3).
 */
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { z } from 'zod';
import { JsonFile } from './json-file.ts';
import { type StateDoc, type StateLocation, stateDoc } from './state.ts';
import type { Role } from './tokens.ts';

x509.cryptoProvider.set(webcrypto as never);

type Key = webcrypto.CryptoKey;
type KeyPair = webcrypto.CryptoKeyPair;

const ED25519 = { name: 'Ed25519' };
const CA_YEARS = 20;
const CLIENT_YEARS = 5;

const recordSchema = z.object({
  serial: z.string().regex(/^[0-9a-f]+$/),
  host: z.string(),
  repo: z.string(),
  role: z.enum(['append', 'admin']),
  created: z.string(),
  fingerprint: z.string(),
  revoked: z.string().optional(),
});
export type ClientRecord = z.infer<typeof recordSchema>;
const fileSchema = z.object({ version: z.literal(1), clients: z.array(recordSchema) });

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export class ClientAuthority {
  private readonly caCertDoc: StateDoc;
  private readonly caKeyDoc: StateDoc;
  private readonly file: JsonFile<z.infer<typeof fileSchema>>;

  constructor(state: StateLocation) {
    this.caCertDoc = stateDoc(state, 'client-ca.crt');
    this.caKeyDoc = stateDoc(state, 'client-ca.key');
    this.file = new JsonFile(state, 'clients.json', fileSchema, () => ({ version: 1, clients: [] }));
  }

  /** The CA certificate (PEM) the server verifies clients against; null before the first `client add`. */
  async caCert(): Promise<string | null> {
    return (await this.caCertDoc.read())?.text ?? null;
  }

  /** The CA certificate, made on first use. */
  async ensureCaCert(): Promise<string> {
    await this.ensureCa();
    return (await this.caCert())!;
  }

  private async ensureCa(): Promise<{ cert: x509.X509Certificate; key: Key }> {
    const existing = await this.caCert();
    if (existing) {
      const keyPem = (await this.caKeyDoc.read())?.text ?? '';
      const der = Buffer.from(keyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
      const key = await webcrypto.subtle.importKey('pkcs8', der, ED25519, false, ['sign']);
      return { cert: new x509.X509Certificate(existing), key };
    }
    const keys = (await webcrypto.subtle.generateKey(ED25519, true, ['sign', 'verify'])) as KeyPair;
    const now = new Date();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomBytes(16).toString('hex'),
      name: 'CN=stowage client CA',
      notBefore: now,
      notAfter: new Date(now.getTime() + CA_YEARS * 365 * 86_400_000),
      keys: keys as never,
      signingAlgorithm: ED25519,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    });
    // Key first, create-only: two servers making a CA at once cannot mix halves (the loser uses the winner's).
    if (!(await this.caKeyDoc.write(pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), null))) return await new Promise((r) => setTimeout(r, 100)).then(() => this.ensureCa());
    await this.caCertDoc.write(cert.toString('pem') + '\n', null);
    return { cert, key: keys.privateKey };
  }

  /** Issues a certificate for `host`; returns its PEM key and certificate, shown once. */
  async issue(host: string, repo: string, role: Role): Promise<{ key: string; cert: string; record: ClientRecord }> {
    const ca = await this.ensureCa();
    const keys = (await webcrypto.subtle.generateKey(ED25519, true, ['sign', 'verify'])) as KeyPair;
    const serial = randomBytes(16).toString('hex');
    const now = new Date();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${host.replace(/[,=+<>#;"\\]/g, '_')}`,
      issuer: ca.cert.subject,
      notBefore: now,
      notAfter: new Date(now.getTime() + CLIENT_YEARS * 365 * 86_400_000),
      publicKey: keys.publicKey as never,
      signingKey: ca.key as never,
      signingAlgorithm: ED25519,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    });
    const certPem = cert.toString('pem') + '\n';
    const fingerprint = new (await import('node:crypto')).X509Certificate(certPem).fingerprint256;
    const record: ClientRecord = { serial: cert.serialNumber.toLowerCase(), host, repo, role, created: now.toISOString(), fingerprint };
    await this.file.update((f) => ({ ...f, clients: [...f.clients, record] }));
    const key = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    return { key, cert: certPem, record };
  }

  async list(): Promise<ClientRecord[]> {
    return (await this.file.get()).clients;
  }

  /** Revokes by host name or serial; returns how many certificates it revoked. */
  async revoke(hostOrSerial: string): Promise<number> {
    let n = 0;
    const when = new Date().toISOString();
    await this.file.update((f) => ({
      ...f,
      clients: f.clients.map((c) => {
        if (c.revoked || (c.host !== hostOrSerial && c.serial !== hostOrSerial.toLowerCase())) return c;
        n++;
        return { ...c, revoked: when };
      }),
    }));
    return n;
  }

  /** The record of a verified peer certificate's serial, unless unknown or revoked. */
  async lookup(serialHex: string): Promise<ClientRecord | null> {
    const serial = serialHex.toLowerCase().replace(/^0+/, '');
    const find = (list: ClientRecord[]): ClientRecord | undefined => list.find((c) => c.serial.replace(/^0+/, '') === serial);
    let rec = find((await this.file.get()).clients);
    // Issued a moment ago by `serve client add`: look at the file now.
    if (!rec) rec = find((await this.file.get(true)).clients);
    return rec && !rec.revoked ? rec : null;
  }
}
