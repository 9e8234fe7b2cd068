// The napshare services as TypeScript calls: connect-node over the gRPC protocol, TLS pinned
// to one certificate per server (tls.ts), a deadline on every call, a bounded message size,
// and errors reduced to what a program can act on.

import { createHash } from "node:crypto";

import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { PeerService } from "./gen/napshare/v1/peer_pb.js";
import {
  TrackerService,
  type JoinResponse,
  type SearchResult,
} from "./gen/napshare/v1/tracker_pb.js";
import type { FileInfo } from "./gen/napshare/v1/file_info_pb.js";
import { peerSecurity, pinnedTlsOptions, PinError, type Security } from "./tls.js";

/** Deadline for one unary tracker call. */
export const CALL_TIMEOUT_MS = 10_000;
/** Deadline for a whole download stream. */
export const DOWNLOAD_TIMEOUT_MS = 120_000;
/** Every response chunk is at most 2 MiB; 4 MiB is every gRPC client's default limit. */
const READ_MAX_BYTES = 4 * 1024 * 1024;
/** The tracker refuses requests over 16 MiB; do not send what it would refuse. */
const WRITE_MAX_BYTES = 16 * 1024 * 1024;
/** The most pages `searchAll` and `browseAll` follow, whatever the tracker answers. */
const MAX_PAGES = 200;

/** A transport to `host:port` or `[v6]:port`: plain text, or TLS trusting one certificate. */
function transportTo(address: string, security: Security, what: string) {
  const limits = { readMaxBytes: READ_MAX_BYTES, writeMaxBytes: WRITE_MAX_BYTES };
  if (security.plaintext) {
    return createGrpcTransport({ baseUrl: `http://${address}`, ...limits });
  }
  return createGrpcTransport({
    baseUrl: `https://${address}`,
    nodeOptions: pinnedTlsOptions(security.certificate, what, security.serverName),
    ...limits,
  });
}

export type TrackerClient = Client<typeof TrackerService>;
export type PeerClient = Client<typeof PeerService>;

export function trackerClient(address: string, security: Security): TrackerClient {
  return createClient(TrackerService, transportTo(address, security, `tracker ${address}`));
}

export function peerClient(peerId: string, security: Security): PeerClient {
  return createClient(PeerService, transportTo(peerId, security, `peer ${peerId}`));
}

/** Register `files` as shared by host:port (a peer that may not exist: the tracker does not check). */
export async function join(
  tracker: TrackerClient,
  host: string,
  port: number,
  files: FileInfo[],
): Promise<JoinResponse> {
  return tracker.join({ host, port, files }, { timeoutMs: CALL_TIMEOUT_MS });
}

/**
 * One search: by exact name, by keywords, or by content (a file's sha256 or pieces root, as
 * 64 hex digits: every peer that shares those bytes, under whatever name each gave them).
 */
export type SearchBy =
  | { name: string }
  | { query: string }
  | { sha256: string }
  | { piecesRoot: string };

/** Every result of a search, following next_page_token; also how many pages it took. */
export async function searchAll(
  tracker: TrackerClient,
  by: SearchBy,
  pageSize: number,
): Promise<{ results: SearchResult[]; pages: number }> {
  const results: SearchResult[] = [];
  let pageToken = "";
  for (let pages = 1; pages <= MAX_PAGES; pages++) {
    const page = await tracker.search(
      { ...by, pageSize, pageToken },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    results.push(...page.results);
    if (page.nextPageToken === "") {
      return { results, pages };
    }
    pageToken = page.nextPageToken;
  }
  throw new Error(`the tracker sent more than ${MAX_PAGES} pages`);
}

/** What a whole Browse returned: the files in name order, and how many pages they took. */
export interface Browsed {
  files: FileInfo[];
  pages: number;
  /** The peer's certificate (DER), to pin when connecting to it; empty for an anonymous peer. */
  certificate: Uint8Array;
  reachable: boolean;
}

/**
 * Every file `peerId` shares under `folder` ("": all of them), as the tracker's index lists
 * them, following next_page_token. A tracker is a stranger too: a file outside the folder, or
 * not after the one before it in name order (UTF-8 bytes), is an error, not a file.
 */
export async function browseAll(
  tracker: TrackerClient,
  peerId: string,
  folder: string,
  pageSize: number,
): Promise<Browsed> {
  const prefix = folder === "" || folder.endsWith("/") ? folder : `${folder}/`;
  const files: FileInfo[] = [];
  let last = Buffer.alloc(0);
  let pageToken = "";
  for (let pages = 1; pages <= MAX_PAGES; pages++) {
    const page = await tracker.browse(
      { peerId, folder: prefix, pageSize, pageToken },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    for (const file of page.files) {
      const name = Buffer.from(file.name, "utf8");
      if (!file.name.startsWith(prefix) || Buffer.compare(name, last) <= 0) {
        throw new Error(`the tracker listed ${JSON.stringify(file.name)} out of order or folder`);
      }
      last = name;
      files.push(file);
    }
    if (page.nextPageToken === "") {
      return { files, pages, certificate: page.certificate, reachable: page.reachable };
    }
    pageToken = page.nextPageToken;
  }
  throw new Error(`the tracker sent more than ${MAX_PAGES} pages`);
}

/** What a Download delivered: size and sha256 as announced and as received. */
export interface Downloaded {
  announced: FileInfo;
  bytes: bigint;
  sha256: string;
}

/**
 * Stream the file of a search result from its peer, over TLS trusting only the certificate the
 * tracker listed for it (plain text if the tracker is), asking the peer to refuse it if its
 * digest is not the listed sha256, checking every chunk's offset, and hashing what arrives.
 */
export async function download(tracker: Security, source: SearchResult): Promise<Downloaded> {
  const { peerId, file } = source;
  if (file === undefined) {
    throw new Error(`the search result for ${peerId} names no file`);
  }
  const peer = peerClient(peerId, peerSecurity(tracker, peerId, source.certificate));
  const digest = createHash("sha256");
  let announced: FileInfo | undefined;
  let bytes = 0n;
  const stream = peer.download(
    { name: file.name, sha256: file.sha256 },
    { timeoutMs: DOWNLOAD_TIMEOUT_MS },
  );
  for await (const chunk of stream) {
    announced ??= chunk.file;
    if (chunk.offset !== bytes) {
      throw new Error(`chunk at offset ${chunk.offset}, expected ${bytes}`);
    }
    digest.update(chunk.data);
    bytes += BigInt(chunk.data.length);
  }
  if (announced === undefined) {
    throw new Error("the peer's first response did not carry the file");
  }
  return { announced, bytes, sha256: digest.digest("hex") };
}

/** A failed call as a program can act on it. */
export interface CallError {
  /** The gRPC status code name, as in the .proto docs: `INVALID_ARGUMENT`. */
  code: string;
  message: string;
  /** google.rpc.ErrorInfo's `reason`, when the server sent one; "" otherwise. */
  reason: string;
}

/** The gRPC name of a status code: Code.InvalidArgument → INVALID_ARGUMENT. */
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

const ERROR_INFO = "google.rpc.ErrorInfo";

const DOMAIN = "napshare.v1";

/**
 * The reason of a google.rpc.ErrorInfo of napshare's domain, read from its wire bytes (field 1
 * reason, field 2 domain; no googleapis schema needed); "" for another domain or bytes that
 * do not parse: a detail is a stranger's input too.
 */
function errorInfoReason(value: Uint8Array): string {
  let reason = "";
  let domain = "";
  try {
    const reader = new BinaryReader(value);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1) {
        reason = reader.string();
      } else if (field === 2) {
        domain = reader.string();
      } else {
        reader.skip(wireType);
      }
    }
  } catch {
    return "";
  }
  return domain === DOMAIN ? reason : "";
}

/**
 * OpenSSL's verdicts on a certificate that no trust anchor vouches for: with one pinned
 * certificate as the only anchor, each means the server showed another.
 */
const NOT_PINNED = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
]);

/** The PinError behind a failed call or handshake, if a certificate check failed it. */
export function pinError(err: unknown, what: string): PinError | undefined {
  for (let cause = err; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof PinError) {
      return cause;
    }
    const code = (cause as NodeJS.ErrnoException).code;
    if (code !== undefined && NOT_PINNED.has(code)) {
      return new PinError(`${what} showed a certificate other than the pinned one (${code})`);
    }
  }
  return undefined;
}

export function callError(err: unknown): CallError {
  const error = ConnectError.from(err);
  let reason = "";
  for (const detail of error.details) {
    if ("type" in detail && detail.type === ERROR_INFO) {
      reason = errorInfoReason(detail.value);
      break;
    }
  }
  return { code: codeName(error.code), message: error.rawMessage, reason };
}
