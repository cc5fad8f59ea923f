// The archive unpacker against real archives written to disk: trees made by node-tar and by a zip writer here
// unpack whole (modes, empty files, nested folders, the single top folder stripped), concurrently into one
// target; and hostile archives, built byte by byte where the libraries refuse to make them (names with `..`,
// links, devices, lying zip headers, overlapping zip entries, metadata bombs, truncated and corrupt data),
// are refused as invalid_model naming the entry, leaving nothing behind: no target, no temporary folder,
// no file outside.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { create as createTar, Header, Pax, type HeaderData } from 'tar';
import {
  detectArchiveFormat,
  entryPathSegments,
  unpackArchive,
  type UnpackLimits,
  type UnpackResult,
} from '../src/artifacts/unpack.ts';
import { isModelgateError } from '../src/errors.ts';

const LIMITS: UnpackLimits = { maxBytes: 10 * 1024 * 1024, maxEntries: 100 };
const REPOSITORY = new URL('..', import.meta.url).pathname;
const UNPACK_MODULE = new URL('../src/artifacts/unpack.ts', import.meta.url).href;
const run = promisify(execFile);
const KiB = 1024;

/** Deterministic bytes that do not compress, so a flipped byte lands in real deflate data. */
function noise(length: number, seed = 'noise'): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < length; i++)
    blocks.push(createHash('sha256').update(`${seed}${i}`).digest());
  return Buffer.concat(blocks).subarray(0, length);
}

// --- tar by hand: node-tar's Header encodes any name and type, the packer would refuse or fix them ---

interface TarFixtureEntry {
  header: HeaderData;
  body?: Buffer;
}

/** A tar stream (not gzipped) of `entries`, each header's size set from its body unless given. */
function rawTar(entries: TarFixtureEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const { header, body = Buffer.alloc(0) } of entries) {
    const encoded = new Header({ mode: 0o644, mtime: new Date(0), size: body.length, ...header });
    // A name past ustar's 100 + 155 characters goes in a PAX header before, as tar writes it.
    if (encoded.encode()) blocks.push(new Pax({ path: header.path, linkpath: header.linkpath }).encode());
    blocks.push(encoded.block!, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024)); // the end-of-archive blocks
  return Buffer.concat(blocks);
}

const tarGz = (entries: TarFixtureEntry[]) => gzipSync(rawTar(entries));
const tarFile = (path: string, body: Buffer | string = 'x'): TarFixtureEntry => ({
  header: { path, type: 'File' },
  body: Buffer.from(body),
});

// --- zip by hand: every field is ours to set, including the ones that lie ---

interface ZipFixtureEntry {
  name: string;
  data?: Buffer;
  /** Deflate (8, the default for non-empty data), store (0), or any other method number. */
  method?: number;
  /** Unix st_mode in the upper half of the external attributes; 0o100644 by default. */
  unixMode?: number;
  /** Overrides the uncompressed size both headers state. */
  declaredSize?: number;
  /** Overrides the CRC-32 both headers state. */
  crc?: number;
  /** General purpose flags on top of bit 11 (UTF-8 names). */
  flags?: number;
  /** Points the central record at the data of the earlier entry with this index; no local record of its own. */
  sharesDataOf?: number;
}

function zip(entries: ZipFixtureEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const entry of entries) {
    const data = entry.data ?? Buffer.alloc(0);
    const method = entry.method ?? (data.length > 0 ? 8 : 0);
    const stored = method === 8 ? deflateRawSync(data) : data;
    const name = Buffer.from(entry.name);
    const fields = {
      flags: 0x800 | (entry.flags ?? 0),
      method,
      crc: entry.crc ?? crc32(data),
      compressedSize: stored.length, // for a shared entry: the same data, so the same length
      size: entry.declaredSize ?? data.length,
    };
    if (entry.sharesDataOf !== undefined) {
      offsets.push(offsets[entry.sharesDataOf]!);
    } else {
      const local = Buffer.alloc(30);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(20, 4);
      local.writeUInt16LE(fields.flags, 6);
      local.writeUInt16LE(method, 8);
      local.writeUInt32LE(fields.crc, 14);
      local.writeUInt32LE(fields.compressedSize, 18);
      local.writeUInt32LE(fields.size, 22);
      local.writeUInt16LE(name.length, 26);
      offsets.push(offset);
      locals.push(local, name, stored);
      offset += local.length + name.length + stored.length;
    }
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix: the external attributes hold st_mode
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(fields.flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(fields.crc, 16);
    central.writeUInt32LE(fields.compressedSize, 20);
    central.writeUInt32LE(fields.size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((entry.unixMode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offsets.at(-1)!, 42);
    centrals.push(central, name);
  }
  const centralDirectory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralDirectory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, centralDirectory, end]);
}

// --- the folder every test works in ---

let root: string;
let caseNumber = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'modelgate-unpack-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Case {
  /** Holds the archive and `cache/`; nothing else may appear in it. */
  dir: string;
  archivePath: string;
  /** The target's parent: only the target may appear in it. */
  cacheDir: string;
  target: string;
}

async function newCase(archive: Buffer, fileName: string): Promise<Case> {
  const dir = join(root, `case-${++caseNumber}`);
  const cacheDir = join(dir, 'cache');
  await mkdir(cacheDir, { recursive: true });
  const archivePath = join(dir, fileName);
  await writeFile(archivePath, archive);
  return { dir, archivePath, cacheDir, target: join(cacheDir, 'model') };
}

const digest = (content: Buffer | string) => createHash('sha256').update(content).digest('hex');

/** Every file under `dir` with its mode and content, folders with their mode: the whole tree to compare. */
async function treeOf(dir: string): Promise<Record<string, string>> {
  const tree: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const relative = path.slice(dir.length + 1);
    const mode = ((await stat(path)).mode & 0o777).toString(8);
    if (entry.isDirectory()) tree[`${relative}/`] = mode;
    else if (entry.isFile()) tree[relative] = `${mode} ${digest(await readFile(path))}`;
    else tree[relative] = 'neither a file nor a folder';
  }
  return tree;
}

/**
 * Unpacks `archive` and expects invalid_model with a message matching `message`; then nothing may be left:
 * not the target, not the temporary folder, nothing next to the archive or the cache folder.
 */
async function assertRefused(
  archive: Buffer,
  fileName: string,
  message: RegExp,
  limits: UnpackLimits = LIMITS,
): Promise<void> {
  const { dir, archivePath, cacheDir, target } = await newCase(archive, fileName);
  await assert.rejects(unpackArchive(archivePath, target, limits), (error: unknown) => {
    assert.ok(isModelgateError(error), `expected a ModelgateError, got ${String(error)}`);
    assert.equal(error.code, 'invalid_model');
    assert.equal(error.status, 400);
    assert.match(error.message, message);
    return true;
  });
  assert.deepEqual(
    await readdir(cacheDir),
    [],
    'no target, no temporary folder, nothing escaped one level up',
  );
  assert.deepEqual((await readdir(dir)).sort(), ['cache', fileName].sort(), 'nothing escaped two levels up');
}

// --- the happy paths ---

/** A model folder: a program (executable), weights (one empty), and a config three folders down. */
async function writeModelFolder(
  parent: string,
): Promise<{ folder: string; expected: Record<string, string>; counts: UnpackResult }> {
  const folder = join(parent, 'my-model');
  await mkdir(join(folder, 'config', 'deep', 'nested'), { recursive: true });
  await mkdir(join(folder, 'weights'));
  const program = '#!/bin/sh\necho ok\n';
  const weights = noise(300 * KiB);
  const settings = '{"threads":2}';
  await writeFile(join(folder, 'run.sh'), program);
  await chmod(join(folder, 'run.sh'), 0o755);
  await writeFile(join(folder, 'weights', 'layer1.bin'), weights);
  await writeFile(join(folder, 'weights', 'empty.bin'), '');
  await writeFile(join(folder, 'config', 'deep', 'nested', 'settings.json'), settings);
  await chmod(join(folder, 'config', 'deep', 'nested', 'settings.json'), 0o600); // comes out 0644
  const expected = {
    'run.sh': `755 ${digest(program)}`,
    'weights/': '755',
    'weights/layer1.bin': `644 ${digest(weights)}`,
    'weights/empty.bin': `644 ${digest('')}`,
    'config/': '755',
    'config/deep/': '755',
    'config/deep/nested/': '755',
    'config/deep/nested/settings.json': `644 ${digest(settings)}`,
  };
  const counts = { files: 4, bytes: program.length + weights.length + settings.length };
  return { folder, expected, counts };
}

async function packModelFolder(paths: (folder: string) => { cwd: string; entries: string[] }) {
  const source = await mkdtemp(join(root, 'source-'));
  const { folder, expected, counts } = await writeModelFolder(source);
  const archivePath = join(source, 'model.tar.gz');
  const { cwd, entries } = paths(folder);
  await createTar({ gzip: true, file: archivePath, cwd }, entries);
  return { archive: await readFile(archivePath), expected, counts };
}

describe('unpacks', () => {
  test('a .tar.gz of one folder into its content: nested folders, the executable bit, an empty file', async () => {
    const { archive, expected, counts } = await packModelFolder((folder) => ({
      cwd: join(folder, '..'),
      entries: ['my-model'],
    }));
    const { archivePath, cacheDir, target } = await newCase(archive, 'model.tar.gz');
    assert.deepEqual(await unpackArchive(archivePath, target, LIMITS), counts);
    assert.deepEqual(await treeOf(target), expected);
    assert.equal(((await stat(target)).mode & 0o777).toString(8), '755');
    assert.deepEqual(await readdir(cacheDir), ['model'], 'the temporary folder is gone');
  });

  test('a .tar.gz of a folder\'s content ("./run.sh"…) into the same tree', async () => {
    const { archive, expected } = await packModelFolder((folder) => ({ cwd: folder, entries: ['.'] }));
    const { archivePath, target } = await newCase(archive, 'model.tar.gz');
    await unpackArchive(archivePath, target, LIMITS);
    assert.deepEqual(await treeOf(target), expected);
  });

  test('the same modes whatever the umask', async () => {
    const { archive, expected } = await packModelFolder((folder) => ({ cwd: folder, entries: ['.'] }));
    const { archivePath, target } = await newCase(archive, 'model.tar.gz');
    const umask = process.umask(0o077);
    try {
      await unpackArchive(archivePath, target, LIMITS);
    } finally {
      process.umask(umask);
    }
    assert.deepEqual(await treeOf(target), expected);
  });

  test('a zip with several top-level entries as it is: folders listed or implied, modes, stored and deflated', async () => {
    const program = Buffer.from('#!/bin/sh\n');
    const weights = noise(100 * KiB);
    const archive = zip([
      { name: 'run.sh', data: program, unixMode: 0o100755 },
      { name: 'weights/', unixMode: 0o040755 },
      { name: 'weights/layer1.bin', data: weights },
      { name: 'weights/empty.bin' },
      { name: 'notes.txt', data: Buffer.from('stored'), method: 0, unixMode: 0 }, // made elsewhere: no mode
      { name: 'config/deep/settings.json', data: Buffer.from('{}'), unixMode: 0o100600 },
    ]);
    assert.equal(detectArchiveFormat(archive), 'zip');
    const { archivePath, cacheDir, target } = await newCase(archive, 'model.zip');
    const result = await unpackArchive(archivePath, target, LIMITS);
    assert.deepEqual(result, { files: 5, bytes: program.length + weights.length + 6 + 2 });
    assert.deepEqual(await treeOf(target), {
      'run.sh': `755 ${digest(program)}`,
      'weights/': '755',
      'weights/layer1.bin': `644 ${digest(weights)}`,
      'weights/empty.bin': `644 ${digest('')}`,
      'notes.txt': `644 ${digest('stored')}`,
      'config/': '755',
      'config/deep/': '755',
      'config/deep/settings.json': `644 ${digest('{}')}`,
    });
    assert.deepEqual(await readdir(cacheDir), ['model']);
  });

  test('a zip of one folder into its content', async () => {
    const archive = zip([
      { name: 'my-model/' },
      { name: 'my-model/run.sh', data: Buffer.from('x'), unixMode: 0o100775 },
    ]);
    const { archivePath, target } = await newCase(archive, 'model.zip');
    await unpackArchive(archivePath, target, LIMITS);
    assert.deepEqual(await treeOf(target), { 'run.sh': `755 ${digest('x')}` });
  });

  test('an empty zip (only the end record) into an empty folder', async () => {
    const archive = zip([]);
    assert.equal(detectArchiveFormat(archive), 'zip');
    const { archivePath, target } = await newCase(archive, 'empty.zip');
    assert.deepEqual(await unpackArchive(archivePath, target, LIMITS), { files: 0, bytes: 0 });
    assert.deepEqual(await readdir(target), []);
  });

  test('exactly at the limits', async () => {
    const archive = tarGz([{ header: { path: 'a/', type: 'Directory' } }, tarFile('a/b', 'x'.repeat(100))]);
    const { archivePath, target } = await newCase(archive, 'model.tar.gz');
    assert.deepEqual(await unpackArchive(archivePath, target, { maxBytes: 100, maxEntries: 2 }), {
      files: 1,
      bytes: 100,
    });
  });

  test('one archive into one target four times at once: all succeed, one complete copy, nothing left over', async () => {
    const { archive, expected } = await packModelFolder((folder) => ({ cwd: folder, entries: ['.'] }));
    const { archivePath, cacheDir, target } = await newCase(archive, 'model.tar.gz');
    const results = await Promise.all([1, 2, 3, 4].map(() => unpackArchive(archivePath, target, LIMITS)));
    for (const result of results) assert.deepEqual(result, results[0]);
    assert.deepEqual(await treeOf(target), expected);
    assert.deepEqual(await readdir(cacheDir), ['model']);
  });

  test('one archive into one target by three processes at once: one complete copy, nothing left over', async () => {
    const { archive, expected, counts } = await packModelFolder((folder) => ({
      cwd: folder,
      entries: ['.'],
    }));
    const { archivePath, cacheDir, target } = await newCase(archive, 'model.tar.gz');
    const script = [
      `import { unpackArchive } from ${JSON.stringify(UNPACK_MODULE)};`,
      `const [archivePath, target] = process.argv.slice(1);`,
      `console.log(JSON.stringify(await unpackArchive(archivePath, target, ${JSON.stringify(LIMITS)})));`,
    ].join('\n');
    const outputs = await Promise.all(
      [1, 2, 3].map(() =>
        run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, archivePath, target], {
          cwd: REPOSITORY,
        }),
      ),
    );
    for (const { stdout } of outputs) assert.deepEqual(JSON.parse(stdout), counts);
    assert.deepEqual(await treeOf(target), expected);
    assert.deepEqual(await readdir(cacheDir), ['model']);
  });

  test('into a target that exists already: that one is kept, this copy removed', async () => {
    const { archivePath, cacheDir, target } = await newCase(tarGz([tarFile('run.sh')]), 'model.tar.gz');
    await mkdir(target);
    await writeFile(join(target, 'from-the-first-process'), '');
    await unpackArchive(archivePath, target, LIMITS);
    assert.deepEqual(await readdir(target), ['from-the-first-process']);
    assert.deepEqual(await readdir(cacheDir), ['model']);
  });

  test('into a target whose parent does not exist yet', async () => {
    const { archivePath, cacheDir } = await newCase(tarGz([tarFile('run.sh')]), 'model.tar.gz');
    await unpackArchive(archivePath, join(cacheDir, 'sha256', 'abc'), LIMITS);
    assert.deepEqual(await readdir(join(cacheDir, 'sha256', 'abc')), ['run.sh']);
  });
});

test('limits that are not whole numbers ≥ 0 are a programming error, not a refusal', async () => {
  const { archivePath, cacheDir, target } = await newCase(tarGz([tarFile('a')]), 'model.tar.gz');
  for (const limits of [
    { maxBytes: Number.NaN, maxEntries: 10 },
    { maxBytes: 10, maxEntries: -1 },
    { maxBytes: Infinity, maxEntries: 10 },
  ]) {
    await assert.rejects(unpackArchive(archivePath, target, limits), RangeError);
  }
  assert.deepEqual(await readdir(cacheDir), []);
});

describe('tells the format by its first bytes', () => {
  const cases: [string, Buffer, ReturnType<typeof detectArchiveFormat>][] = [
    ['gzip', gzipSync(Buffer.from('x')), 'tar.gz'],
    ['a zip with entries', zip([{ name: 'a' }]), 'zip'],
    ['an empty zip', zip([]), 'zip'],
    ['a plain tar', rawTar([tarFile('a')]), undefined],
    ['gzip magic but not deflate', Buffer.from([0x1f, 0x8b, 0x09, 0x00]), undefined],
    ['a spanned zip marker', Buffer.from('PK\x07\x08'), undefined],
    ['text', Buffer.from('hello'), undefined],
    ['nothing', Buffer.alloc(0), undefined],
    ['one byte', Buffer.from([0x1f]), undefined],
  ];
  for (const [what, bytes, format] of cases) {
    test(`${what}: ${String(format)}`, () => assert.equal(detectArchiveFormat(bytes), format));
  }
});

describe('reads entry names', () => {
  const accepted: [string, string[]][] = [
    ['run.sh', ['run.sh']],
    ['./run.sh', ['run.sh']],
    ['a//b/./c/', ['a', 'b', 'c']],
    ['./', []],
    ['..a/b..', ['..a', 'b..']],
    ['name with spaces:and colon', ['name with spaces:and colon']],
  ];
  for (const [name, segments] of accepted) {
    test(`accepts ${JSON.stringify(name)}`, () => assert.deepEqual(entryPathSegments(name), segments));
  }
  const refused: [string, RegExp][] = [
    ['../evil', /climbs out/],
    ['a/../../evil', /climbs out/],
    ['a/..', /climbs out/],
    ['/etc/passwd', /absolute path/],
    ['//server/share', /absolute path/],
    ['C:/Windows/evil', /drive letter/],
    ['c:evil', /drive letter/],
    ['C:\\evil', /backslash/],
    ['a\\..\\..\\evil', /backslash/],
    ['a\0b', /NUL/],
  ];
  for (const [name, message] of refused) {
    test(`refuses ${JSON.stringify(name)}`, () =>
      assert.throws(
        () => entryPathSegments(name),
        (error: unknown) =>
          isModelgateError(error) && error.code === 'invalid_model' && message.test(error.message),
      ));
  }
});

describe('refuses a .tar.gz, leaving nothing behind, holding', () => {
  test('a name climbing out with ".."', async () => {
    await assertRefused(
      tarGz([tarFile('run.sh'), tarFile('../evil')]),
      'm.tar.gz',
      /"\.\.\/evil" climbs out/,
    );
    await assertRefused(tarGz([tarFile('a/../../evil')]), 'm.tar.gz', /"a\/\.\.\/\.\.\/evil" climbs out/);
  });

  test('an absolute name', async () => {
    // Aimed at the case folder itself, so that the listing would show it had it been written.
    const evil = join(root, `case-${caseNumber + 1}`, 'evil');
    await assertRefused(tarGz([tarFile(evil)]), 'm.tar.gz', /is an absolute path/);
  });

  test('a name climbing out from the ustar prefix field, or from a PAX header', async () => {
    const prefixed = `${'a'.repeat(120)}/../../../evil`;
    await assertRefused(tarGz([tarFile(prefixed)]), 'm.tar.gz', /climbs out/);
    const pax = `${'a/'.repeat(200)}${'../'.repeat(202)}evil`;
    await assertRefused(tarGz([tarFile(pax)]), 'm.tar.gz', /"(a\/){200}(\.\.\/){202}evil" climbs out/);
  });

  test('a symbolic link, and a file written through it', async () => {
    const archive = tarGz([
      { header: { path: 'escape', type: 'SymbolicLink', linkpath: '..' } },
      tarFile('escape/evil'),
    ]);
    await assertRefused(archive, 'm.tar.gz', /"escape" is a symbolic link/);
  });

  test('a hard link', async () => {
    const archive = tarGz([
      tarFile('run.sh'),
      { header: { path: 'passwd', type: 'Link', linkpath: '/etc/passwd' } },
    ]);
    await assertRefused(archive, 'm.tar.gz', /"passwd" is a hard link/);
  });

  test('a device and a FIFO', async () => {
    const device = { path: 'null', type: 'CharacterDevice', devmaj: 1, devmin: 3 } as const;
    await assertRefused(tarGz([{ header: device }]), 'm.tar.gz', /"null" is a device/);
    await assertRefused(
      tarGz([{ header: { path: 'disk', type: 'BlockDevice' } }]),
      'm.tar.gz',
      /is a device/,
    );
    await assertRefused(tarGz([{ header: { path: 'pipe', type: 'FIFO' } }]), 'm.tar.gz', /"pipe" is a FIFO/);
  });

  test('a type node-tar would skip in silence (a sparse file)', async () => {
    const archive = tarGz([{ header: { path: 'weights.bin', type: 'SparseFile' }, body: Buffer.alloc(10) }]);
    await assertRefused(archive, 'm.tar.gz', /"weights.bin" is a tar entry of type SparseFile/);
  });

  test('a name twice, and a file inside a file', async () => {
    await assertRefused(
      tarGz([tarFile('run.sh'), tarFile('./run.sh')]),
      'm.tar.gz',
      /"\.\/run.sh" appears twice/,
    );
    await assertRefused(tarGz([tarFile('a'), tarFile('a/b')]), 'm.tar.gz', /"a\/b" lies inside the file "a"/);
    const folderThenFile = tarGz([{ header: { path: 'a', type: 'Directory' } }, tarFile('a')]);
    await assertRefused(folderThenFile, 'm.tar.gz', /"a" appears twice/);
  });

  test('more entries than maxEntries, the folders a name implies included', async () => {
    const five = tarGz(['a', 'b', 'c', 'd', 'e'].map((name) => tarFile(name)));
    await assertRefused(five, 'm.tar.gz', /"e" is past the limit of 4 files and folders/, {
      ...LIMITS,
      maxEntries: 4,
    });
    const deep = tarGz([tarFile('a/b/c/d/file')]);
    await assertRefused(deep, 'm.tar.gz', /"a\/b\/c\/d\/file" is past the limit of 3/, {
      ...LIMITS,
      maxEntries: 3,
    });
  });

  test('more bytes than maxBytes', async () => {
    const archive = tarGz([tarFile('a', noise(600)), tarFile('b', noise(600))]);
    await assertRefused(archive, 'm.tar.gz', /"b" is past the limit of 1000 bytes/, {
      ...LIMITS,
      maxBytes: 1000,
    });
  });

  test('a truncated stream, cut in the gzip or in the tar', async () => {
    const whole = tarGz([tarFile('weights.bin', noise(64 * KiB))]);
    await assertRefused(
      whole.subarray(0, whole.length / 2),
      'm.tar.gz',
      /cannot be read: unexpected end of file/,
    );
    const cutTar = gzipSync(rawTar([tarFile('weights.bin', noise(64 * KiB))]).subarray(0, 32 * KiB));
    await assertRefused(cutTar, 'm.tar.gz', /cannot be read: .*Truncated input/);
  });

  test('corrupt data: in the deflate stream, in file content (the gzip CRC-32), in a header (its checksum)', async () => {
    const whole = tarGz([tarFile('weights.bin', noise(64 * KiB))]);
    const flipped = Buffer.from(whole);
    flipped[Math.floor(whole.length / 2)]! ^= 0xff;
    await assertRefused(flipped, 'm.tar.gz', /cannot be read/);
    // Noise is deflated as stored blocks: byte 1000 is file content, wrong only by the CRC-32 at the very end.
    const content = Buffer.from(whole);
    content[1000]! ^= 0xff;
    await assertRefused(content, 'm.tar.gz', /cannot be read: incorrect data check/);
    const tar = rawTar([tarFile('run.sh')]);
    tar[0] = 'R'.charCodeAt(0); // the name changes, the checksum does not
    await assertRefused(gzipSync(tar), 'm.tar.gz', /cannot be read: .*checksum failure/);
  });

  test('no tar inside the gzip, or another gzip inside it', async () => {
    await assertRefused(gzipSync(Buffer.from('just text\n'.repeat(100))), 'm.tar.gz', /cannot be read/);
    await assertRefused(gzipSync(tarGz([tarFile('a')])), 'm.tar.gz', /holds a gzip file, not a tar archive/);
  });

  test('a metadata bomb: a PAX header of 2 MiB, or 20,000 empty ones', async () => {
    const big = rawTar([
      { header: { path: 'PaxHeader', type: 'ExtendedHeader' }, body: Buffer.alloc(2 * 1024 * KiB) },
    ]);
    await assertRefused(gzipSync(big), 'm.tar.gz', /is a tar entry of type ExtendedHeader/);
    const empty = rawTar(
      Array.from({ length: 20_000 }, () => ({ header: { path: 'x', type: 'ExtendedHeader' as const } })),
    );
    await assertRefused(gzipSync(empty), 'm.tar.gz', /holds more than \d+ bytes of tar data/, {
      maxBytes: 1000,
      maxEntries: 10,
    });
  });

  test('a name too long for the file system', async () => {
    await assertRefused(tarGz([tarFile('a'.repeat(300))]), 'm.tar.gz', /"a{300}" has a name too long/);
  });

  test('not an archive at all', async () => {
    await assertRefused(
      Buffer.from('print("hello")\n'),
      'model.tar.gz',
      /is neither a .tar.gz nor a .zip file/,
    );
  });
});

describe('refuses a zip, leaving nothing behind, holding', () => {
  test('a name climbing out with ".."', async () => {
    await assertRefused(
      zip([{ name: 'ok' }, { name: '../x', data: Buffer.from('x') }]),
      'm.zip',
      /"\.\.\/x" climbs out/,
    );
  });

  test('an absolute name, a drive letter, backslashes', async () => {
    const evil = join(root, `case-${caseNumber + 1}`, 'evil');
    await assertRefused(zip([{ name: evil }]), 'm.zip', /is an absolute path/);
    await assertRefused(zip([{ name: 'C:/evil' }]), 'm.zip', /"C:\/evil" starts with a drive letter/);
    await assertRefused(zip([{ name: '..\\..\\evil' }]), 'm.zip', /holds a backslash/);
  });

  test('a symbolic link (by its external attributes)', async () => {
    const link = { name: 'escape', data: Buffer.from('..'), unixMode: 0o120777 };
    await assertRefused(zip([link, { name: 'escape/evil' }]), 'm.zip', /"escape" is a symbolic link/);
  });

  test('a FIFO, a device, a socket', async () => {
    await assertRefused(zip([{ name: 'pipe', unixMode: 0o010644 }]), 'm.zip', /"pipe" is a FIFO/);
    await assertRefused(zip([{ name: 'null', unixMode: 0o020666 }]), 'm.zip', /"null" is a device/);
    await assertRefused(zip([{ name: 'sock', unixMode: 0o140755 }]), 'm.zip', /"sock" is a socket/);
  });

  test('headers that understate the size (a bomb): stopped at the stated size', async () => {
    const bomb = { name: 'weights.bin', data: Buffer.alloc(10 * 1024 * KiB), declaredSize: 100 };
    await assertRefused(zip([bomb]), 'm.zip', /"weights.bin" cannot be read: too many bytes/);
  });

  test('entries that overlap (every record points at the same data): stopped at maxBytes', async () => {
    const kernel = { name: 'w0', data: Buffer.alloc(100 * KiB) };
    const copies = Array.from({ length: 9 }, (_, i) => ({
      name: `w${i + 1}`,
      data: kernel.data,
      sharesDataOf: 0,
    }));
    await assertRefused(zip([kernel, ...copies]), 'm.zip', /"w5" is past the limit of 512000 bytes/, {
      ...LIMITS,
      maxBytes: 500 * KiB,
    });
  });

  test('content that does not match its CRC-32', async () => {
    await assertRefused(
      zip([{ name: 'a', data: Buffer.from('abc'), crc: 1 }]),
      'm.zip',
      /"a" is corrupt: its CRC-32/,
    );
    const stored = { name: 'a', data: Buffer.from('abc'), crc: 1, method: 0 };
    await assertRefused(zip([stored]), 'm.zip', /"a" is corrupt: its CRC-32/);
  });

  test('a truncated archive, and corrupt deflate data', async () => {
    const whole = zip([{ name: 'weights.bin', data: noise(64 * KiB) }]);
    await assertRefused(whole.subarray(0, whole.length - 30), 'm.zip', /cannot be read/);
    const flipped = Buffer.from(whole);
    flipped[40 * KiB]! ^= 0xff;
    await assertRefused(flipped, 'm.zip', /"weights.bin" (cannot be read|is corrupt)/);
  });

  test('an encrypted entry, and an unsupported compression method', async () => {
    await assertRefused(
      zip([{ name: 'a', data: Buffer.from('abc'), flags: 1 }]),
      'm.zip',
      /"a" cannot be read: .*encrypted/,
    );
    const bzip2 = { name: 'a', data: Buffer.from('abc'), method: 12 };
    await assertRefused(zip([bzip2]), 'm.zip', /"a" cannot be read: unsupported compression method/);
  });

  test('a name twice, and more entries than maxEntries', async () => {
    await assertRefused(zip([{ name: 'a' }, { name: 'a' }]), 'm.zip', /"a" appears twice/);
    const three = zip([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    await assertRefused(three, 'm.zip', /"c" is past the limit of 2/, { ...LIMITS, maxEntries: 2 });
  });
});
