// A small napshare client: joins a tracker, searches by name and by keywords across pages,
// downloads a file from the peer that shares it with sha256 verified, and shows an error.
// Prints one JSON object per step on stdout; exit code 0 when every step did what it should.
//
//   node dist/main.js --tracker 127.0.0.1:1099 --name aula1.mp4 --query aula
//
// Options: --tracker host:port (required), --name (a file some peer shares), --query (keywords
// for it), --listen host:port (the address to Join as; its files are made up, so nothing
// listens there), --catalog N (how many made-up files to Join with), --page-size N.

import { parseArgs } from "node:util";

import { create } from "@bufbuild/protobuf";

import { FileInfoSchema, type FileInfo } from "./gen/napshare/v1/file_info_pb.js";
import {
  callError,
  download,
  join,
  searchAll,
  trackerClient,
  CALL_TIMEOUT_MS,
  type TrackerClient,
} from "./napshare.js";

/** A failed step: the message goes to stderr and the exit code is 1. */
class StepFailed extends Error {}

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

async function run(tracker: TrackerClient, options: Record<string, string>): Promise<void> {
  const [host, port] = splitAddress(options["listen"] ?? "");
  const files = catalog(Number(options["catalog"]));
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

    const name = options["name"] ?? "";
    const byName = await searchAll(tracker, { name }, pageSize);
    const byQuery = await searchAll(tracker, { query: options["query"] ?? "" }, pageSize);
    report("search", {
      name,
      byName: byName.results.map((r) => r.peerId),
      byQuery: byQuery.results.map((r) => `${r.peerId}/${r.file?.name}`),
    });
    const source = byName.results[0];
    if (source?.file === undefined) {
      throw new StepFailed(`no peer shares ${name}`);
    }

    const got = await download(source.peerId, source.file);
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
      ["name with /", () => tracker.search({ name: "a/b.mp4" }, { timeoutMs: CALL_TIMEOUT_MS })],
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

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      tracker: { type: "string" },
      name: { type: "string", default: "" },
      query: { type: "string", default: "" },
      listen: { type: "string", default: "127.0.0.1:9" },
      catalog: { type: "string", default: "250" },
      "page-size": { type: "string", default: "100" },
    },
  });
  if (values.tracker === undefined) {
    process.stderr.write("napshare-client-ts: --tracker host:port is required\n");
    return 2;
  }
  try {
    await run(trackerClient(values.tracker), values as Record<string, string>);
    return 0;
  } catch (err) {
    const message =
      err instanceof StepFailed ? err.message : JSON.stringify(callError(err));
    process.stderr.write(`napshare-client-ts: ${message}\n`);
    return 1;
  }
}

process.exitCode = await main();
