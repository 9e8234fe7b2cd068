// TLS as the Python peer does it: every connection trusts exactly one certificate, never a CA.
// The tracker's comes from a file (--tracker-cert) or from the server itself, checked against a
// SHA-256 fingerprint (--tracker-fingerprint); a peer's comes from the tracker's search result.

import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import * as tls from "node:tls";

/** The name a peer's certificate holds (its only one): the Python peer's PEER_NAME. */
export const PEER_NAME = "napshare-peer";
/** Seconds to wait for a TLS handshake when fetching a tracker's certificate. */
const HANDSHAKE_TIMEOUT_MS = 5_000;

/** How to talk to one server: plain text, or TLS trusting exactly `certificate` (DER). */
export type Security =
  | { plaintext: true }
  | { plaintext: false; certificate: Uint8Array; serverName?: string };

export const PLAINTEXT: Security = { plaintext: true };

/** The server showed another certificate than the pinned one, or none, or spoke no TLS. */
export class PinError extends Error {}

/** The SHA-256 of a certificate (DER): 64 lowercase hex digits, as napshare prints them. */
export function fingerprint(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

/** A fingerprint as typed: 64 hex digits, colons allowed, any case; undefined if not one. */
export function parseFingerprint(text: string): string | undefined {
  const hex = text.replaceAll(":", "").toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

function pem(der: Uint8Array): string {
  const body = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN CERTIFICATE-----\n${body.trimEnd()}\n-----END CERTIFICATE-----\n`;
}

/** The first certificate of a PEM file, as DER. */
export function readCertificate(path: string): Uint8Array {
  return new Uint8Array(new X509Certificate(readFileSync(path)).raw);
}

/**
 * Node's TLS options that accept exactly `certificate`: it is the only trust anchor, and the
 * certificate the server shows must be it byte for byte (so no other, even one it signed).
 * The name is not checked: only the pin decides, as in the Python peer.
 */
export function pinnedTlsOptions(
  certificate: Uint8Array,
  what: string,
  serverName?: string,
): tls.ConnectionOptions {
  const expected = Buffer.from(certificate);
  return {
    ca: pem(certificate),
    ...(serverName === undefined ? {} : { servername: serverName }),
    checkServerIdentity: (_host, shown) =>
      expected.equals(shown.raw)
        ? undefined
        : new PinError(
            `${what} showed certificate ${fingerprint(shown.raw)}, not the pinned ` +
              `${fingerprint(expected)}`,
          ),
  };
}

/**
 * The certificate (DER) the TLS server at `address` shows, checked against nothing: the
 * caller compares it with a fingerprint. Rejects with PinError when it speaks no TLS.
 */
export function fetchCertificate(address: string): Promise<Uint8Array> {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      rejectUnauthorized: false, // checked by the caller, against the fingerprint
      ALPNProtocols: ["h2"],
      timeout: HANDSHAKE_TIMEOUT_MS,
    });
    socket.once("secureConnect", () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      if (raw === undefined || raw.length === 0) {
        reject(new PinError(`${address} showed no certificate`));
      } else {
        resolve(new Uint8Array(raw));
      }
    });
    socket.once("timeout", () => {
      socket.destroy();
      reject(new Error(`no TLS handshake with ${address} within ${HANDSHAKE_TIMEOUT_MS} ms`));
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code?.startsWith("ERR_SSL") || error.code === "ECONNRESET") {
        reject(new PinError(`${address} speaks no TLS (a --plaintext server?): ${error.message}`));
      } else {
        reject(new Error(`${address} is unreachable (${error.code ?? error.message})`));
      }
    });
  });
}

/** Whether `address` completes a TLS handshake (to tell a --plaintext user why it failed). */
export async function speaksTls(address: string): Promise<boolean> {
  try {
    await fetchCertificate(address);
    return true;
  } catch {
    return false;
  }
}

/** How to reach the tracker, from the command line's choice. */
export type TrackerTrust =
  | { plaintext: true }
  | { certificateFile: string }
  | { fingerprint: string };

/**
 * The tracker's Security: plain text; its certificate from a file; or the certificate it
 * shows, if its SHA-256 is the fingerprint given (else PinError: someone may pose as it).
 */
export async function trackerSecurity(address: string, trust: TrackerTrust): Promise<Security> {
  if ("plaintext" in trust) {
    return PLAINTEXT;
  }
  if ("certificateFile" in trust) {
    return { plaintext: false, certificate: readCertificate(trust.certificateFile) };
  }
  const shown = await fetchCertificate(address);
  const seen = fingerprint(shown);
  if (seen !== trust.fingerprint) {
    throw new PinError(
      `tracker ${address} has certificate fingerprint ${seen}, not ${trust.fingerprint} ` +
        "(--tracker-fingerprint): someone may be posing as it",
    );
  }
  return { plaintext: false, certificate: shown };
}

/** How to reach a peer a search listed: its own certificate, under the peer name. */
export function peerSecurity(tracker: Security, peerId: string, certificate: Uint8Array): Security {
  if (tracker.plaintext) {
    return PLAINTEXT;
  }
  if (certificate.length === 0) {
    throw new PinError(
      `peer ${peerId} joined without a certificate, so nothing says who it is: not downloading from it`,
    );
  }
  return { plaintext: false, certificate, serverName: PEER_NAME };
}
