/**
 * Certificate fingerprints as people compare them: the SHA-256 of the DER
 * certificate, written as 32 colon-separated uppercase hex pairs (what
 * `openssl x509 -fingerprint -sha256` prints). Accepted in any case, with or
 * without colons or a `sha256:` prefix.
 */
import { X509Certificate } from 'node:crypto';
import { UsageError } from './errors.ts';

/** The canonical form, or a UsageError naming what was given. */
export function normalizeFingerprint(given: string): string {
  const hex = given.trim().replace(/^sha256:/i, '').replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new UsageError(`not a SHA-256 certificate fingerprint: ${JSON.stringify(given)} (expected 64 hex digits, colons allowed)`);
  }
  return hex.match(/../g)!.join(':').toUpperCase();
}

export function fingerprintOfPem(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

export function fingerprintOfDer(der: Uint8Array): string {
  return new X509Certificate(der).fingerprint256;
}
