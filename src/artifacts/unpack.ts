// Unpacks a model archive (.tar.gz or .zip) from an untrusted upload into a folder of the artifact cache:
// regular files and folders only, within byte and entry limits, all or nothing.
//
// The root of the tree: when the archive's top level is one folder and nothing else (`tar czf m.tgz my-model/`),
// that folder's content becomes targetDir, so an archive of a folder unpacks like the folder itself (and like
// `tar czf m.tgz -C my-model .`). Only that one level is stripped; any other top level is targetDir as it is.
//
// Refused, as `invalid_model` naming the entry, leaving nothing behind: names that are absolute, hold `..`, a
// backslash, a drive letter or a NUL; anything but a file or a folder (links, devices, FIFOs, sparse or unknown
// tar types); a name that appears twice or lies inside a file; more files and folders than `maxEntries`; more
// content than `maxBytes`, counted as it is written (a zip's headers may lie); a truncated or corrupt archive.
// Files get mode 0755 if any executable bit is set in the archive, 0644 otherwise; folders 0755. Owners and
// times are not kept.
//
// Readers: node-tar's Parser (streaming, checks every header's checksum; strict, so every warning is an
// error) and yauzl (reads the central directory and each entry on demand, checks sizes against it; it does not
// check CRC-32, done here). Not adm-zip: it reads the whole archive into memory.
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip, crc32 } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import yauzl from 'yauzl';
import { ModelgateError } from '../errors.ts';

export type ArchiveFormat = 'tar.gz' | 'zip';

export interface UnpackLimits {
  /** Bytes of file content the tree may hold, counted as they are written. No default: the caller's setting. */
  maxBytes: number;
  /** Files and folders the tree may hold: the archive's entries plus folders they imply but do not list. */
  maxEntries: number;
}

export interface UnpackResult {
  /** Regular files in the tree. */
  files: number;
  /** Bytes of their content. */
  bytes: number;
}

/**
 * The format by the first bytes of a file (4 are enough): gzip (1f 8b 08, deflate) is taken for .tar.gz; a zip
 * starts with a local file header (PK\x03\x04), or with the end record when it has no entries (PK\x05\x06).
 */
export function detectArchiveFormat(firstBytes: Buffer): ArchiveFormat | undefined {
  if (firstBytes.length >= 3 && firstBytes[0] === 0x1f && firstBytes[1] === 0x8b && firstBytes[2] === 0x08) {
    return 'tar.gz';
  }
  const zipMagic = firstBytes.subarray(0, 4).toString('latin1');
  if (zipMagic === 'PK\x03\x04' || zipMagic === 'PK\x05\x06') return 'zip';
  return undefined;
}

/** Whether the file starts as a .tar.gz or a .zip does. */
export async function isArchiveFile(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(4), 0, 4, 0);
    return detectArchiveFormat(buffer.subarray(0, bytesRead)) !== undefined;
  } finally {
    await file.close();
  }
}

/**
 * Unpacks `archivePath` into `targetDir` (its parent is created if missing): into a fresh temporary folder
 * next to it (`.<name>.unpacking-*`), renamed into place when complete, so `targetDir` is never half there.
 * When `targetDir` exists by then (another process unpacked the same archive first), it is kept and this copy
 * removed. A process killed mid-way leaves its temporary folder behind, never a partial `targetDir`.
 */
export async function unpackArchive(
  archivePath: string,
  targetDir: string,
  limits: UnpackLimits,
): Promise<UnpackResult> {
  for (const [name, value] of Object.entries(limits)) {
    // NaN or a negative number would silently disable the check it sets.
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`${name} must be a whole number ≥ 0: ${value}`);
    }
  }
  const format = detectArchiveFormat(await readFirstBytes(archivePath, 4));
  if (format === undefined) throw refusal(undefined, 'is neither a .tar.gz nor a .zip file');
  await mkdir(dirname(targetDir), { recursive: true });
  const workDir = await mkdtemp(join(dirname(targetDir), `.${basename(targetDir)}.unpacking-`));
  try {
    const tree = new TreeWriter(workDir, limits);
    if (format === 'zip') await readZipEntries(archivePath, (entry) => tree.add(entry));
    else await readTarGzEntries(archivePath, limits, (entry) => tree.add(entry));
    const single = tree.singleTopFolder();
    const root = single === undefined ? workDir : join(workDir, single);
    await chmod(root, 0o755);
    await rename(root, targetDir).catch((error: unknown) => {
      // Linux says ENOTEMPTY, others EEXIST: the other copy is of the same archive, so it is as good as ours.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
    });
    return tree.result();
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * The path segments of an entry name, `.` and empty segments dropped (`./a//b/` is `a/b`); refuses names that
 * could reach outside the tree or mean something else on another system.
 */
export function entryPathSegments(name: string): string[] {
  if (name.includes('\0')) throw refusal(name, 'holds a NUL character');
  if (name.includes('\\')) throw refusal(name, 'holds a backslash (only / separates folders)');
  if (name.startsWith('/')) throw refusal(name, 'is an absolute path');
  if (/^[A-Za-z]:/.test(name)) throw refusal(name, 'starts with a drive letter');
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw refusal(name, 'climbs out of its folder with ".."');
  return segments;
}

/** One entry as a reader hands it over. */
interface ArchiveEntry {
  /** The name as the archive stores it. */
  name: string;
  /** Files and folders are unpacked; anything else (`unsupported` says what it is) refuses the archive. */
  kind: 'file' | 'directory' | { unsupported: string };
  /** Permission bits as stored (0 when the archive has none). */
  mode: number;
  /** The size the header states: used to refuse early, never trusted to stop at. */
  declaredBytes: number;
  /** A file's content, read once; fails when the archive is corrupt. */
  content(): AsyncIterable<Buffer>;
}

type VisitEntry = (entry: ArchiveEntry) => Promise<void>;

/** Writes entries under `root`, keeping count of what exists so every conflict is found before it is written. */
class TreeWriter {
  private readonly kinds = new Map<string, 'file' | 'directory'>();
  private entries = 0;
  private files = 0;
  private bytes = 0;

  constructor(
    private readonly root: string,
    private readonly limits: UnpackLimits,
  ) {}

  /** The name of the only top-level entry when it is a folder. */
  singleTopFolder(): string | undefined {
    const top = [...this.kinds].filter(([relative]) => !relative.includes('/'));
    return top.length === 1 && top[0]![1] === 'directory' ? top[0]![0] : undefined;
  }

  result(): UnpackResult {
    return { files: this.files, bytes: this.bytes };
  }

  async add(entry: ArchiveEntry): Promise<void> {
    await this.write(entry).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') throw error;
      throw refusal(entry.name, 'has a name too long for the file system', error);
    });
  }

  private async write(entry: ArchiveEntry): Promise<void> {
    this.countEntry(entry.name);
    if (typeof entry.kind === 'object') {
      throw refusal(entry.name, `is a ${entry.kind.unsupported}: only files and folders are unpacked`);
    }
    const segments = entryPathSegments(entry.name);
    if (segments.length === 0) {
      if (entry.kind === 'directory') return; // `./`: the root itself
      throw refusal(entry.name, 'names no file');
    }
    const relative = segments.join('/');
    const existing = this.kinds.get(relative);
    if (existing === 'file' || (existing === 'directory' && entry.kind === 'file')) {
      throw refusal(entry.name, 'appears twice in the archive');
    }
    await this.makeFolders(segments.slice(0, -1), entry.name);
    if (entry.kind === 'directory') {
      if (existing === undefined) await this.makeFolder(relative);
      return;
    }
    if (this.bytes + entry.declaredBytes > this.limits.maxBytes) throw this.tooLarge(entry.name);
    this.kinds.set(relative, 'file');
    // A new file ('wx') in folders made here: nothing in the path can be a link.
    const handle = await open(join(this.root, relative), 'wx', 0o600);
    try {
      for await (const chunk of entry.content()) {
        this.bytes += chunk.length;
        if (this.bytes > this.limits.maxBytes) throw this.tooLarge(entry.name);
        for (let written = 0; written < chunk.length;) {
          written += (await handle.write(chunk, written)).bytesWritten;
        }
      }
      await handle.chmod((entry.mode & 0o111) !== 0 ? 0o755 : 0o644);
    } finally {
      await handle.close();
    }
    this.files += 1;
  }

  private async makeFolders(segments: string[], name: string): Promise<void> {
    for (let depth = 1; depth <= segments.length; depth++) {
      const relative = segments.slice(0, depth).join('/');
      const kind = this.kinds.get(relative);
      if (kind === 'file') throw refusal(name, `lies inside the file "${relative}"`);
      if (kind === undefined) {
        this.countEntry(name);
        await this.makeFolder(relative);
      }
    }
  }

  private async makeFolder(relative: string): Promise<void> {
    const path = join(this.root, relative);
    await mkdir(path);
    await chmod(path, 0o755); // not left to the umask
    this.kinds.set(relative, 'directory');
  }

  private countEntry(name: string): void {
    this.entries += 1;
    if (this.entries > this.limits.maxEntries) {
      throw refusal(name, `is past the limit of ${this.limits.maxEntries} files and folders`);
    }
  }

  private tooLarge(name: string): ModelgateError {
    return refusal(name, `is past the limit of ${this.limits.maxBytes} bytes unpacked`);
  }
}

/**
 * Tar data allowed per entry on top of file content: its header, padding, and PAX or GNU long-name headers.
 * Bounds the decompression work an archive of metadata only (empty PAX headers, which gzip shrinks 1000-fold)
 * could cause; real archives need about 1.5 KiB per entry.
 */
const TAR_OVERHEAD_BYTES_PER_ENTRY = 8 * 1024;

/**
 * Hands each entry of a .tar.gz to `visit`, one at a time. The gzip stream is decompressed here rather than in
 * node-tar so that what follows the end-of-archive blocks is not handed on: node-tar would buffer it in memory.
 */
async function readTarGzEntries(archivePath: string, limits: UnpackLimits, visit: VisitEntry): Promise<void> {
  const maxTarBytes = limits.maxBytes + (limits.maxEntries + 1) * TAR_OVERHEAD_BYTES_PER_ENTRY;
  const parser = new Parser({ strict: true, brotli: false, zstd: false });
  let failure: { error: unknown } | undefined;
  let signalFailure = () => {};
  /** Resolves at the first failure: every wait here races it, as the parser may never go on. */
  const failed = new Promise<void>((resolve) => (signalFailure = resolve));
  const fail = (error: unknown) => {
    failure ??= { error };
    signalFailure();
  };
  /** An entry's content until it ends or something fails (then the visit fails with the first failure). */
  async function* contentOf(entry: ReadEntry): AsyncGenerator<Buffer> {
    const chunks = entry[Symbol.asyncIterator]();
    for (;;) {
      const next = await Promise.race([chunks.next(), failed.then(() => undefined)]);
      if (next === undefined) throw failure!.error;
      if (next.done === true) return;
      yield next.value;
    }
  }
  let visiting = Promise.resolve();
  parser.on('entry', (entry: ReadEntry) => {
    visiting = visiting
      .then(() => (failure === undefined ? visit(tarEntry(entry, contentOf)) : undefined))
      .catch(fail)
      .finally(() => entry.resume()); // what the visit left unread (a refused entry) must not stall the parser
  });
  // Unknown types (sparse files, ACLs…) and oversized metadata, which node-tar would skip in silence.
  parser.on('ignoredEntry', (entry: ReadEntry) =>
    fail(refusal(entry.path, `is a tar entry of type ${entry.type}: only files and folders are unpacked`)),
  );
  parser.on('error', (error: Error) => fail(refusal(undefined, `cannot be read: ${error.message}`, error)));
  let sawEndOfArchive = false;
  parser.on('eof', () => (sawEndOfArchive = true));
  const ended = new Promise<void>((resolve) => parser.on('end', resolve));

  const tarBytes = pipeline(createReadStream(archivePath), createGunzip(), () => {});
  let tarBytesRead = 0;
  try {
    for await (const chunk of tarBytes as AsyncIterable<Buffer>) {
      // node-tar would unzip a second gzip layer (a tar name never starts with 0x1f) and work past our counts.
      if (tarBytesRead === 0 && chunk[0] === 0x1f) {
        throw refusal(undefined, 'holds a gzip file, not a tar archive');
      }
      tarBytesRead += chunk.length;
      if (tarBytesRead > maxTarBytes) {
        throw refusal(undefined, `holds more than ${maxTarBytes} bytes of tar data`);
      }
      // Past the end-of-archive blocks comes padding: read only so that gunzip checks the stream's CRC-32.
      if (sawEndOfArchive) continue;
      if (!parser.write(chunk)) {
        await Promise.race([new Promise<void>((resolve) => parser.once('drain', () => resolve())), failed]);
      }
      if (failure !== undefined) break;
    }
    if (failure === undefined) {
      parser.end();
      await Promise.race([ended, failed]);
    }
  } catch (error) {
    // zlib's errors (Z_DATA_ERROR, Z_BUF_ERROR: "unexpected end of file") mean a corrupt or truncated gzip.
    const code = (error as NodeJS.ErrnoException).code;
    fail(
      code?.startsWith('Z_')
        ? refusal(undefined, `cannot be read: ${(error as Error).message}`, error)
        : error,
    );
  } finally {
    tarBytes.destroy();
    await visiting; // nothing is still writing when the caller removes the folder
  }
  if (failure !== undefined) throw failure.error;
}

function tarEntry(entry: ReadEntry, contentOf: (entry: ReadEntry) => AsyncIterable<Buffer>): ArchiveEntry {
  return {
    name: entry.path,
    kind: tarEntryKind(entry),
    mode: entry.mode ?? 0,
    declaredBytes: entry.size,
    content: () => contentOf(entry),
  };
}

function tarEntryKind(entry: ReadEntry): ArchiveEntry['kind'] {
  switch (entry.type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory': // node-tar reads a folder's size as 0, whatever its header says
      return 'directory';
    case 'SymbolicLink':
      return { unsupported: 'symbolic link' };
    case 'Link':
      return { unsupported: 'hard link' };
    case 'CharacterDevice':
    case 'BlockDevice':
      return { unsupported: 'device' };
    case 'FIFO':
      return { unsupported: 'FIFO' };
    default:
      return { unsupported: `tar entry of type ${entry.type}` };
  }
}

/** Hands each entry of a zip to `visit`, one at a time, in central directory order. */
async function readZipEntries(archivePath: string, visit: VisitEntry): Promise<void> {
  const readFailure = (error: unknown, name?: string) =>
    error instanceof ModelgateError
      ? error
      : refusal(name, `cannot be read: ${(error as Error).message}`, error);
  // Names are decoded below, not by yauzl, so that a bad one is refused by the same rules as in a tar.
  const zip = await yauzl
    .openPromise(archivePath, { lazyEntries: true, autoClose: false, decodeStrings: false })
    .catch((error: unknown) => {
      throw readFailure(error);
    });
  try {
    const entries = zip.eachEntry();
    for (;;) {
      // Only yauzl's errors are the archive's fault: the visit's own (a full disk) go up as they are.
      const next = await entries.next().catch((error: unknown) => {
        throw readFailure(error);
      });
      if (next.done === true) break;
      const entry = next.value;
      // strictFileNames: a backslash stays one, for entryPathSegments to refuse.
      const name = yauzl.getFileNameLowLevel(
        entry.generalPurposeBitFlag,
        entry.fileNameRaw,
        entry.extraFields,
        true,
      );
      await visit({
        name,
        kind: zipEntryKind(entry, name),
        mode: zipUnixMode(entry) & 0o7777,
        declaredBytes: entry.uncompressedSize,
        content: () => zipEntryContent(zip, entry, name, readFailure),
      });
    }
  } finally {
    zip.close();
  }
}

/** Unix mode bits from the upper half of the external attributes (0 when the zip was made elsewhere). */
const zipUnixMode = (entry: yauzl.Entry) => (entry.externalFileAttributes >>> 16) & 0xffff;

function zipEntryKind(entry: yauzl.Entry, name: string): ArchiveEntry['kind'] {
  const fileType = zipUnixMode(entry) & 0o170000;
  if (fileType === 0o040000) return 'directory';
  // No type (a zip made on Windows): a trailing slash makes a folder, as zip tools write one.
  if (fileType === 0o100000 || fileType === 0) return name.endsWith('/') ? 'directory' : 'file';
  if (fileType === 0o120000) return { unsupported: 'symbolic link' };
  if (fileType === 0o020000 || fileType === 0o060000) return { unsupported: 'device' };
  if (fileType === 0o010000) return { unsupported: 'FIFO' };
  if (fileType === 0o140000) return { unsupported: 'socket' };
  return { unsupported: `zip entry of file type 0o${fileType.toString(8)}` };
}

/** An entry's content, checked against its CRC-32 once all is read (yauzl checks the size only). */
async function* zipEntryContent(
  zip: yauzl.ZipFile,
  entry: yauzl.Entry,
  name: string,
  readFailure: (error: unknown, name?: string) => ModelgateError,
): AsyncGenerator<Buffer> {
  let checksum = 0;
  try {
    const stream: Readable = await zip.openReadStreamPromise(entry);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      checksum = crc32(chunk, checksum);
      yield chunk;
    }
  } catch (error) {
    throw readFailure(error, name);
  }
  if (checksum !== entry.crc32) throw refusal(name, 'is corrupt: its CRC-32 does not match its content');
}

async function readFirstBytes(path: string, count: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(count), 0, count, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** `invalid_model`: "archive entry "<name>" <reason>", or "archive <reason>" when no entry is to blame. */
function refusal(entryName: string | undefined, reason: string, cause?: unknown): ModelgateError {
  if (entryName === undefined) return new ModelgateError('invalid_model', `archive ${reason}`, { cause });
  return new ModelgateError('invalid_model', `archive entry ${JSON.stringify(entryName)} ${reason}`, {
    cause,
    details: { entry: entryName },
  });
}
