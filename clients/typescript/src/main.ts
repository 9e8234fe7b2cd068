// A small napshare client: joins a tracker, searches by name and by keywords across pages,
// finds every peer that shares the same bytes under any name (a search by content), browses
// the peer that shares a file (and one folder of it), downloads the file from it with sha256
// verified, and shows errors.
// Prints one JSON object per step on stdout; exit code 0 when every step did what it should.
//
//   node dist/main.js --tracker 127.0.0.1:1099 --tracker-cert cert.pem --name aula1.mp4 --query aula
//
// Options: --tracker host:port (required); how to trust it, one of --tracker-cert FILE (its
// cert.pem), --tracker-fingerprint HEX (the SHA-256 it printed) or --plaintext (a tracker and
// peers run with --plaintext); --name (a file some peer shares), --query (keywords for it),
// --listen host:port (the address to Join as; its files are made up, so nothing listens
// there), --catalog N (how many made-up files to Join with), --page-size N, --folder F (a
// folder of the peer's to browse too).
// Exit codes: 0 success, 1 a step failed, 2 bad arguments, 12 the tracker's certificate is not
// the one pinned (or it speaks no TLS), 13 a peer showed another certificate than the tracker
// lists for it; as napshare-peer's.

import { parseArgs } from "node:util";

import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";

import { FileInfoSchema, type FileInfo } from "./gen/napshare/v1/file_info_pb.js";
import {
  callError,
  browseAll,
  download,
  join,
  pinError,
  searchAll,
  trackerClient,
  CALL_TIMEOUT_MS,
  type TrackerClient,
} from "./napshare.js";
import {
  parseFingerprint,
  speaksTls,
  trackerSecurity,
  type Security,
  type TrackerTrust,
} from "./tls.js";

const PROGRAM = "napshare-client-ts";
const USAGE = 2;
const TRACKER_IDENTITY = 12;
const PEER_IDENTITY = 13;

/** A failed step: the message goes to stderr and the exit code is 1. */
class StepFailed extends Error {}

/** Bad arguments: the message goes to stderr and the exit code is 2. */
class UsageError extends Error {}

function report(step: string, fields: Record<string, unknown>): void {
  const line = JSON.stringify({ step, ...fields }, (_key, value: unknown) =>
    typeof value === "bigint" ? value.toString() : value,
  );
  process.stdout.write(`${line}\n`);
}

function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new StepFailed(`--listen must be host:port, not ${JSON.stringify(address)}`);
  }
  return [host, port];
}

/** Made-up files `ts-catalog-0001.ogg`…, all matching the query "ts catalog". */
function catalog(count: number): FileInfo[] {
  return Array.from({ length: count }, (_, i) =>
    create(FileInfoSchema, {
      name: `ts-catalog-${String(i + 1).padStart(4, "0")}.ogg`,
      size: BigInt(i + 1) * 1000n,
      sha256: "ab".repeat(32),
    }),
  );
}

/** What run() reads from the command line. */
interface RunOptions {
  name: string;
  query: string;
  listen: string;
  catalog: string;
  "page-size": string;
  folder: string;
}

async function run(tracker: TrackerClient, security: Security, options: RunOptions): Promise<void> {
  const [host, port] = splitAddress(options.listen);
  const files = catalog(Number(options.catalog));
  const pageSize = Number(options["page-size"]);

  const joined = await join(tracker, host, port, files);
  report("join", { peerId: joined.peerId, heartbeatSeconds: joined.heartbeatIntervalSeconds });

  try {
    const paged = await searchAll(tracker, { query: "ts catalog" }, pageSize);
    const names = new Set(paged.results.map((r) => r.file?.name));
    report("pages", { pageSize, pages: paged.pages, results: paged.results.length, distinct: names.size });
    if (names.size !== files.length) {
      throw new StepFailed(`paging returned ${names.size} distinct files, not ${files.length}`);
    }

    const name = options.name;
    const byName = await searchAll(tracker, { name }, pageSize);
    const byQuery = await searchAll(tracker, { query: options.query }, pageSize);
    report("search", {
      name,
      byName: byName.results.map((r) => r.peerId),
      byQuery: byQuery.results.map((r) => `${r.peerId}/${r.file?.name}`),
    });
    const source = byName.results[0];
    if (source?.file === undefined) {
      throw new StepFailed(`no peer shares ${name}`);
    }

    // Every peer with the same bytes, whatever it calls them: more sources for one download.
    const bySha256 = await searchAll(tracker, { sha256: source.file.sha256 }, pageSize);
    const root = source.file.piecesRoot;
    const byRoot = root === "" ? bySha256 : await searchAll(tracker, { piecesRoot: root }, pageSize);
    report("content", {
      sha256: source.file.sha256,
      bySha256: bySha256.results.map((r) => `${r.peerId}/${r.file?.name}`),
      byRoot: byRoot.results.map((r) => `${r.peerId}/${r.file?.name}`),
    });
    if (bySha256.results.some((r) => r.file?.sha256 !== source.file?.sha256)) {
      throw new StepFailed("the search by sha256 listed a file with other bytes");
    }

    // What the peer shares, from the tracker's index: it answers for peers behind NATs too.
    const folders = options.folder === "" ? [""] : ["", options.folder];
    for (const folder of folders) {
      const browsed = await browseAll(tracker, source.peerId, folder, pageSize);
      report("browse", {
        peerId: source.peerId,
        folder,
        pages: browsed.pages,
        files: browsed.files.map((f) => f.name),
      });
    }
    const own = await browseAll(tracker, joined.peerId, "", pageSize);
    report("browse-pages", { pageSize, pages: own.pages, files: own.files.length });
    if (own.files.length !== files.length) {
      throw new StepFailed(`browse returned ${own.files.length} files, not ${files.length}`);
    }

    let got;
    try {
      got = await download(security, source);
    } catch (err) {
      const pinned = pinError(err, `peer ${source.peerId}`);
      throw pinned === undefined ? err : new PeerIdentityError(pinned.message);
    }
    const verified = got.sha256 === source.file.sha256 && got.bytes === source.file.size;
    report("download", {
      peerId: source.peerId,
      name: got.announced.name,
      bytes: got.bytes,
      sha256: got.sha256,
      verified,
    });
    if (!verified) {
      throw new StepFailed(`${name}: got ${got.bytes} bytes with sha256 ${got.sha256}`);
    }

    // The tracker refuses requests over 16 MiB with RESOURCE_EXHAUSTED before reading them;
    // connect-node would then wait for the rest of its write until the deadline, so the
    // client refuses them first (writeMaxBytes).
    const errorCases: [string, () => Promise<unknown>][] = [
      ["name with ..", () => tracker.search({ name: "../b.mp4" }, { timeoutMs: CALL_TIMEOUT_MS })],
      [
        "browse of a folder with ..",
        () =>
          tracker.browse({ peerId: joined.peerId, folder: "a/../" }, { timeoutMs: CALL_TIMEOUT_MS }),
      ],
      [
        "browse of an unknown peer",
        () => tracker.browse({ peerId: "127.0.0.1:7" }, { timeoutMs: CALL_TIMEOUT_MS }),
      ],
      [
        "bad page_token",
        () =>
          tracker.search(
            { query: "ts catalog", pageToken: "not-a-token" },
            { timeoutMs: CALL_TIMEOUT_MS },
          ),
      ],
      ["request over 16 MiB", () => join(tracker, "h".repeat(17 * 1024 * 1024), port, [])],
    ];
    for (const [what, call] of errorCases) {
      try {
        await call();
      } catch (err) {
        report("error", { case: what, ...callError(err) });
        continue;
      }
      throw new StepFailed(`the call with a ${what} succeeded`);
    }
  } finally {
    await tracker.leave(
      { peerId: joined.peerId, token: joined.token },
      { timeoutMs: CALL_TIMEOUT_MS },
    );
    report("leave", { peerId: joined.peerId });
  }
}

/** A peer showed another certificate than the tracker lists for it. */
class PeerIdentityError extends Error {}

/** How the command line says to trust the tracker: exactly one way, or UsageError. */
function trackerTrust(values: {
  plaintext?: boolean;
  "tracker-cert"?: string;
  "tracker-fingerprint"?: string;
}): TrackerTrust {
  const given = [
    values.plaintext === true,
    values["tracker-cert"] !== undefined,
    values["tracker-fingerprint"] !== undefined,
  ].filter(Boolean).length;
  if (given !== 1) {
    throw new UsageError(
      "give one of --tracker-cert FILE (the tracker's cert.pem), --tracker-fingerprint HEX " +
        "(the SHA-256 it printed at start) or --plaintext (a tracker run with --plaintext)",
    );
  }
  if (values.plaintext === true) {
    return { plaintext: true };
  }
  if (values["tracker-cert"] !== undefined) {
    return { certificateFile: values["tracker-cert"] };
  }
  const hex = parseFingerprint(values["tracker-fingerprint"] ?? "");
  if (hex === undefined) {
    throw new UsageError(
      `${JSON.stringify(values["tracker-fingerprint"])} is not a SHA-256 fingerprint (64 hex digits)`,
    );
  }
  return { fingerprint: hex };
}

function fail(message: string, code: number): number {
  process.stderr.write(`${PROGRAM}: ${message}\n`);
  return code;
}

async function main(): Promise<number> {
  let values;
  let trust: TrackerTrust;
  try {
    ({ values } = parseArgs({
      options: {
        tracker: { type: "string" },
        "tracker-cert": { type: "string" },
        "tracker-fingerprint": { type: "string" },
        plaintext: { type: "boolean" },
        name: { type: "string", default: "" },
        query: { type: "string", default: "" },
        listen: { type: "string", default: "127.0.0.1:9" },
        catalog: { type: "string", default: "250" },
        "page-size": { type: "string", default: "100" },
        folder: { type: "string", default: "" },
      },
    }));
    if (values.tracker === undefined) {
      throw new UsageError("--tracker host:port is required");
    }
    trust = trackerTrust(values);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err), USAGE);
  }
  try {
    const security = await trackerSecurity(values.tracker, trust);
    await run(trackerClient(values.tracker, security), security, values);
    return 0;
  } catch (err) {
    if (err instanceof PeerIdentityError) {
      return fail(err.message, PEER_IDENTITY);
    }
    const pinned = pinError(err, `tracker ${values.tracker}`);
    if (pinned !== undefined) {
      return fail(pinned.message, TRACKER_IDENTITY);
    }
    if ("plaintext" in trust && (await speaksTls(values.tracker))) {
      return fail(
        `tracker ${values.tracker} serves TLS: give --tracker-cert FILE or ` +
          "--tracker-fingerprint HEX instead of --plaintext",
        1,
      );
    }
    if (err instanceof ConnectError) {
      return fail(JSON.stringify(callError(err)), 1);
    }
    return fail(err instanceof Error ? err.message : String(err), 1);
  }
}

process.exitCode = await main();
