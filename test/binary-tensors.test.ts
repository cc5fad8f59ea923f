// Unit tests of src/runtime/binary-tensors.ts: the binary tensor data extension's framing and byte layout,
// checked against hand-computed little-endian bytes and against requests built as tritonclient builds them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ModelgateError, type ErrorCode } from '../src/errors.ts';
import {
  encodeBinaryInferBody,
  parseBinaryInferBody,
  parseInferenceHeaderLength,
  readBinaryInferBody,
  tensorFromBinary,
  tensorToBinary,
  wantsBinaryOutput,
} from '../src/runtime/binary-tensors.ts';
import type { Datatype } from '../src/runtime/signature.ts';
import type { Tensor } from '../src/runtime/tensor.ts';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** A binary request body: the header as JSON, then the given byte chunks. */
function requestBody(header: unknown, ...chunks: Buffer[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...chunks]), headerLength: json.length };
}

/** Asserts that `run` throws a ModelgateError with `code` whose message matches `pattern`. */
function assertRefused(run: () => unknown, code: ErrorCode, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ModelgateError, `expected a ModelgateError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.equal(error.status, code === 'internal' ? 500 : 400);
    assert.match(error.message, pattern);
    return true;
  });
}

/** A copy of `bytes` that starts at an odd byteOffset of its ArrayBuffer, as pooled Buffers often do. */
function unaligned(bytes: Buffer): Buffer {
  const backing = Buffer.alloc(bytes.length + 1);
  bytes.copy(backing, 1);
  const view = backing.subarray(1);
  assert.equal(view.byteOffset % 2, 1);
  return view;
}

// One tensor per datatype modelgate's Tensor carries, with its bytes worked out by hand (little-endian).
const LAYOUTS: { tensor: Tensor; bytes: string }[] = [
  { tensor: { datatype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) }, bytes: '01 00 01' },
  { tensor: { datatype: 'UINT8', shape: [2], data: new Uint8Array([200, 1]) }, bytes: 'c8 01' },
  { tensor: { datatype: 'UINT16', shape: [2], data: new Uint16Array([0x0102, 65535]) }, bytes: '0201 ffff' },
  { tensor: { datatype: 'UINT32', shape: [1], data: new Uint32Array([0xdeadbeef]) }, bytes: 'efbeadde' },
  {
    tensor: { datatype: 'UINT64', shape: [2], data: new BigUint64Array([2n ** 64n - 1n, 1n]) },
    bytes: 'ffffffffffffffff 0100000000000000',
  },
  { tensor: { datatype: 'INT8', shape: [2], data: new Int8Array([-1, 127]) }, bytes: 'ff 7f' },
  { tensor: { datatype: 'INT16', shape: [2], data: new Int16Array([-2, 0x0102]) }, bytes: 'feff 0201' },
  {
    tensor: { datatype: 'INT32', shape: [2], data: new Int32Array([-1, 0x01020304]) },
    bytes: 'ffffffff 04030201',
  },
  {
    tensor: { datatype: 'INT64', shape: [2], data: new BigInt64Array([-2n, 2n ** 40n]) },
    bytes: 'feffffffffffffff 0000000000010000',
  },
  // Raw IEEE 754 halves: 1.0 is 0x3c00, -2.0 is 0xc000.
  { tensor: { datatype: 'FP16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }, bytes: '003c 00c0' },
  { tensor: { datatype: 'FP32', shape: [2], data: new Float32Array([1.5, -2]) }, bytes: '0000c03f 000000c0' },
  {
    tensor: { datatype: 'FP64', shape: [1, 2], data: new Float64Array([1.5, -0]) },
    bytes: '000000000000f83f 0000000000000080',
  },
  {
    // "é" is two bytes of UTF-8 (c3 a9); an empty element is just its zero length.
    tensor: { datatype: 'BYTES', shape: [3], data: ['ab', '', 'é'] },
    bytes: '02000000 6162  00000000  02000000 c3a9',
  },
];

describe('tensorToBinary and tensorFromBinary', () => {
  test('every datatype is written as the hand-computed little-endian bytes', () => {
    for (const { tensor, bytes } of LAYOUTS) {
      assert.deepEqual(tensorToBinary(tensor), hex(bytes), tensor.datatype);
    }
  });

  test('every datatype round-trips, read from bytes at an odd offset', () => {
    for (const { tensor, bytes } of LAYOUTS) {
      const read = tensorFromBinary('x', tensor.datatype, tensor.shape, unaligned(hex(bytes)));
      assert.deepEqual(read, tensor, tensor.datatype);
      assert.deepEqual(tensorFromBinary('x', tensor.datatype, tensor.shape, tensorToBinary(tensor)), tensor);
    }
  });

  test('FP32 1.5 is 00 00 c0 3f', () => {
    assert.deepEqual(
      [...tensorToBinary({ datatype: 'FP32', shape: [], data: new Float32Array([1.5]) })],
      [0x00, 0x00, 0xc0, 0x3f],
    );
  });

  test('a read tensor owns aligned memory and does not alias the body', () => {
    const bytes = unaligned(hex('000000000000f83f'));
    const tensor = tensorFromBinary('x', 'FP64', [1], bytes);
    assert.ok(tensor.data instanceof Float64Array);
    assert.equal(tensor.data.byteOffset % 8, 0);
    bytes.fill(0);
    assert.equal(tensor.data[0], 1.5);
  });

  test('NaN and infinities survive (binary can carry what JSON cannot)', () => {
    const tensor: Tensor = {
      datatype: 'FP32',
      shape: [3],
      data: new Float32Array([NaN, Infinity, -Infinity]),
    };
    assert.deepEqual(tensorFromBinary('x', 'FP32', [3], tensorToBinary(tensor)), tensor);
  });

  test('empty tensors are zero bytes, BYTES included', () => {
    assert.equal(tensorToBinary({ datatype: 'INT64', shape: [0, 4], data: new BigInt64Array(0) }).length, 0);
    assert.deepEqual(tensorFromBinary('x', 'INT64', [0, 4], Buffer.alloc(0)), {
      datatype: 'INT64',
      shape: [0, 4],
      data: new BigInt64Array(0),
    });
    assert.deepEqual(tensorFromBinary('x', 'BYTES', [2, 0], Buffer.alloc(0)), {
      datatype: 'BYTES',
      shape: [2, 0],
      data: [],
    });
  });

  test('a BYTES element may hold a leading byte-order mark and NULs', () => {
    const tensor: Tensor = { datatype: 'BYTES', shape: [1], data: ['\uFEFFa\u0000b'] };
    assert.deepEqual(tensorToBinary(tensor), hex('06000000 efbbbf 61 00 62'));
    assert.deepEqual(tensorFromBinary('x', 'BYTES', [1], tensorToBinary(tensor)), tensor);
  });

  test('a byte count that does not fit the shape is refused, naming the input', () => {
    assertRefused(
      () => tensorFromBinary('pixels', 'FP32', [2], Buffer.alloc(7)),
      'invalid_input',
      /^input "pixels": shape \[2\] of FP32 needs 8 bytes, binary_data_size gives 7$/,
    );
    assertRefused(
      () => tensorFromBinary('pixels', 'INT64', [2, 2], Buffer.alloc(40)),
      'invalid_input',
      /"pixels".*needs 32 bytes/,
    );
    assertRefused(() => tensorFromBinary('pixels', 'FP32', [-1], Buffer.alloc(0)), 'invalid_input', /shape/);
  });

  test('a datatype with no binary form here is refused', () => {
    assertRefused(() => tensorFromBinary('x', 'BF16', [1], Buffer.alloc(2)), 'invalid_input', /"x".*"BF16"/);
    assertRefused(() => tensorFromBinary('x', 'FOO', [1], Buffer.alloc(4)), 'invalid_input', /"FOO"/);
  });

  test('a BOOL byte other than 0 or 1 is refused', () => {
    assertRefused(
      () => tensorFromBinary('mask', 'BOOL', [3], hex('01 02 00')),
      'invalid_input',
      /"mask": BOOL element 1 is byte 2, not 0 or 1/,
    );
  });

  test('truncated or miscounted BYTES elements are refused', () => {
    const cases: [string, number[], string, RegExp][] = [
      [
        '0200',
        [1],
        'a truncated length',
        /element 0 is truncated: its 4-byte length needs 4 bytes, 2 remain/,
      ],
      [
        '05000000 6162',
        [1],
        'a truncated element',
        /element 0 is truncated: its length says 5 bytes, 2 remain/,
      ],
      [
        '01000000 61',
        [2],
        'too few elements',
        /element 1 is truncated: its 4-byte length needs 4 bytes, 0 remain/,
      ],
      [
        '01000000 61 01000000 62',
        [1],
        'too many elements',
        /more than the 1 BYTES elements .*5 bytes left over/,
      ],
      ['01000000 ff', [1], 'not UTF-8', /element 0 is not UTF-8/],
    ];
    for (const [bytes, shape, what, pattern] of cases) {
      assert.throws(
        () => tensorFromBinary('words', 'BYTES', shape, hex(bytes)),
        (error: unknown) =>
          error instanceof ModelgateError &&
          error.code === 'invalid_input' &&
          error.message.startsWith('input "words": ') &&
          pattern.test(error.message),
        what,
      );
    }
  });

  test('a tensor whose data does not fit its datatype or shape is an internal error', () => {
    assertRefused(
      () => tensorToBinary({ datatype: 'FP64', shape: [1], data: new Float32Array([1]) }),
      'internal',
      /FP64/,
    );
    assertRefused(
      () => tensorToBinary({ datatype: 'FP32', shape: [3], data: new Float32Array([1]) }),
      'internal',
      /1 values for shape \[3\]/,
    );
  });
});

describe('parseBinaryInferBody', () => {
  test("parses the extension document's example: 16 bytes of UINT32 and 3 of BOOL", () => {
    // docs/protocol/extension_binary_data.md, "Binary Tensor Request".
    const header = {
      model_name: 'mymodel',
      inputs: [
        { name: 'input0', shape: [2, 2], datatype: 'UINT32', parameters: { binary_data_size: 16 } },
        { name: 'input1', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } },
      ],
      outputs: [{ name: 'output0', parameters: { binary_data: true } }],
    };
    const input0 = hex('01000000 02000000 03000000 04000000');
    const { body, headerLength } = requestBody(header, input0, hex('01 00 01'));
    const request = parseBinaryInferBody(body, headerLength);
    assert.deepEqual(request.header, header);
    assert.deepEqual([...request.tensors.keys()], ['input0', 'input1']);
    assert.deepEqual(
      tensorFromBinary('input0', 'UINT32', [2, 2], request.tensors.get('input0')!).data,
      new Uint32Array([1, 2, 3, 4]),
    );
    assert.deepEqual(
      tensorFromBinary('input1', 'BOOL', [3], request.tensors.get('input1')!).data,
      new Uint8Array([1, 0, 1]),
    );
    assert.equal(wantsBinaryOutput(request.header, 'output0'), true);
  });

  test('JSON inputs and zero-byte binary inputs sit between binary ones', () => {
    const header = {
      inputs: [
        { name: 'a', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } },
        { name: 'json', shape: [1], datatype: 'FP32', data: [2] },
        { name: 'empty', shape: [0], datatype: 'FP32', parameters: { binary_data_size: 0 } },
        { name: 'b', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } },
      ],
    };
    const { body, headerLength } = requestBody(header, hex('0000c03f'), hex('000000c0'));
    const { tensors } = parseBinaryInferBody(body, headerLength);
    assert.deepEqual([...tensors.keys()], ['a', 'empty', 'b']);
    assert.deepEqual(tensors.get('a'), hex('0000c03f'));
    assert.deepEqual(tensors.get('empty'), Buffer.alloc(0));
    assert.deepEqual(tensors.get('b'), hex('000000c0'));
  });

  test('a header that is the whole body has no binary inputs', () => {
    const { body, headerLength } = requestBody({
      inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }],
    });
    assert.equal(parseBinaryInferBody(body, headerLength).tensors.size, 0);
  });

  test('the header length counts bytes, not characters', () => {
    const header = {
      inputs: [{ name: 'größe', shape: [1], datatype: 'INT8', parameters: { binary_data_size: 1 } }],
    };
    const { body, headerLength } = requestBody(header, hex('ff'));
    assert.equal(headerLength, JSON.stringify(header).length + 2);
    assert.deepEqual(parseBinaryInferBody(body, headerLength).tensors.get('größe'), hex('ff'));
  });

  test('a header length that is not a count of bytes within the body is refused', () => {
    const { body } = requestBody({ inputs: [] });
    for (const length of [-1, body.length + 1, NaN, 1.5, Infinity]) {
      assertRefused(
        () => parseBinaryInferBody(body, length),
        'bad_request',
        /Inference-Header-Content-Length must be an integer from 1 to the body's \d+ bytes/,
      );
    }
    assertRefused(() => parseBinaryInferBody(body, 0), 'bad_request', /raw binary request .* not supported/);
  });

  test('a header that is not a UTF-8 JSON object is refused', () => {
    const broken = Buffer.from('{"inputs": [');
    assertRefused(
      () => parseBinaryInferBody(broken, broken.length),
      'invalid_json',
      /first 12 bytes .* JSON/,
    );
    const cut = requestBody({ inputs: [] });
    assertRefused(
      () => parseBinaryInferBody(cut.body, cut.headerLength - 1),
      'invalid_json',
      /not UTF-8 JSON/,
    );
    const latin1 = Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]); // {"\xff":1}
    assertRefused(() => parseBinaryInferBody(latin1, latin1.length), 'invalid_json', /not UTF-8 JSON/);
    for (const json of ['[]', '"text"', 'null', '3']) {
      assertRefused(
        () => parseBinaryInferBody(Buffer.from(json), json.length),
        'bad_request',
        /must be a JSON object/,
      );
    }
    const notArray = requestBody({ inputs: {} });
    assertRefused(
      () => parseBinaryInferBody(notArray.body, notArray.headerLength),
      'bad_request',
      /inputs must be an array/,
    );
    const notObject = requestBody({ inputs: [7] });
    assertRefused(
      () => parseBinaryInferBody(notObject.body, notObject.headerLength),
      'bad_request',
      /inputs\[0\] must be an object/,
    );
  });

  test('a binary_data_size that is not a non-negative integer is refused, naming the input', () => {
    for (const size of [-1, 1.5, '4', null, true]) {
      const header = {
        inputs: [{ name: 'x', shape: [1], datatype: 'FP32', parameters: { binary_data_size: size } }],
      };
      const { body, headerLength } = requestBody(header, Buffer.alloc(4));
      assertRefused(
        () => parseBinaryInferBody(body, headerLength),
        'invalid_input',
        /^input "x": binary_data_size must be a non-negative integer/,
      );
    }
  });

  test('sizes that do not account for every byte after the header are refused', () => {
    const header = {
      inputs: [
        { name: 'a', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } },
        { name: 'b', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
      ],
    };
    const short = requestBody(header, Buffer.alloc(10));
    assertRefused(
      () => parseBinaryInferBody(short.body, short.headerLength),
      'invalid_input',
      /^input "b": binary_data_size is 8 bytes but only 6 remain in the body$/,
    );
    const long = requestBody(header, Buffer.alloc(13));
    assertRefused(
      () => parseBinaryInferBody(long.body, long.headerLength),
      'bad_request',
      /^1 bytes after the inference header belong to no input \(the binary_data_size values sum to 12\)$/,
    );
    const none = requestBody({ inputs: [] }, Buffer.alloc(3));
    assertRefused(
      () => parseBinaryInferBody(none.body, none.headerLength),
      'bad_request',
      /3 bytes .* no input/,
    );
  });

  test('an input with both data and binary_data_size is refused', () => {
    const header = {
      inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1], parameters: { binary_data_size: 4 } }],
    };
    const { body, headerLength } = requestBody(header, Buffer.alloc(4));
    assertRefused(
      () => parseBinaryInferBody(body, headerLength),
      'invalid_input',
      /^input "x": has both data and parameters.binary_data_size$/,
    );
  });

  test('a binary input given twice is refused', () => {
    const input = { name: 'x', shape: [1], datatype: 'INT8', parameters: { binary_data_size: 1 } };
    const { body, headerLength } = requestBody({ inputs: [input, input] }, Buffer.alloc(2));
    assertRefused(() => parseBinaryInferBody(body, headerLength), 'invalid_input', /"x": is given twice/);
  });
});

describe('readBinaryInferBody', () => {
  /** `body` as a stream of chunks of `size` bytes, as a socket may deliver it. */
  async function* chunksOf(body: Buffer, size: number): AsyncGenerator<Buffer> {
    for (let offset = 0; offset < body.length; offset += size) yield body.subarray(offset, offset + size);
  }

  const header = {
    inputs: [
      { name: 'a', shape: [3], datatype: 'FP32', parameters: { binary_data_size: 12 } },
      { name: 'j', shape: [1], datatype: 'INT32', data: [7] },
      { name: 'b', shape: [2], datatype: 'INT64', parameters: { binary_data_size: 16 } },
    ],
  };
  const a = hex('0000803f 00000040 00004040');
  const b = hex('0100000000000000 feffffffffffffff');

  test('reads what parseBinaryInferBody reads, whatever the chunks, each tensor in a buffer of its own', async () => {
    const { body, headerLength } = requestBody(header, a, b);
    const parsed = parseBinaryInferBody(body, headerLength);
    for (const size of [1, 5, headerLength, headerLength + 3, body.length]) {
      const read = await readBinaryInferBody(chunksOf(body, size), headerLength, body.length);
      assert.deepEqual(read.header, parsed.header);
      assert.deepEqual([...read.tensors.keys()], ['a', 'b']);
      for (const [name, bytes] of read.tensors) {
        assert.deepEqual(bytes, parsed.tensors.get(name), `${name} with ${size}-byte chunks`);
        assert.equal(bytes.byteOffset, 0);
        assert.equal(bytes.buffer.byteLength, bytes.length, `${name} owns its ArrayBuffer`);
      }
      assert.equal(read.owned, true);
    }
    assert.equal(parsed.owned, false);
  });

  test('an owned buffer becomes the tensor in place; a view is copied', async () => {
    const { body, headerLength } = requestBody(header, a, b);
    const read = await readBinaryInferBody(chunksOf(body, 7), headerLength, body.length);
    const bytes = read.tensors.get('a')!;
    const tensor = tensorFromBinary('a', 'FP32', [3], bytes, read.owned);
    assert.deepEqual(Array.from(tensor.data as Float32Array), [1, 2, 3]);
    assert.equal((tensor.data as Float32Array).buffer, bytes.buffer, 'no copy');
    const view = parseBinaryInferBody(body, headerLength).tensors.get('a')!;
    const copied = tensorFromBinary('a', 'FP32', [3], view, false);
    assert.notEqual((copied.data as Float32Array).buffer, view.buffer);
  });

  test('refuses what parseBinaryInferBody refuses, before reading the tensors, and a body cut short', async () => {
    const { body, headerLength } = requestBody(header, a, b);
    const refused = async (chunks: AsyncIterable<Buffer>, length: number, bodyLength: number) => {
      try {
        await readBinaryInferBody(chunks, length, bodyLength);
      } catch (error) {
        return error as ModelgateError;
      }
      assert.fail('accepted');
    };
    let pulled = 0;
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const chunk of chunksOf(body, headerLength)) {
        pulled++;
        yield chunk;
      }
    }
    // The sizes say 28 bytes follow the header, Content-Length says 4 more: refused after the header alone.
    const unclaimed = await refused(counted(), headerLength, body.length + 4);
    assert.equal(unclaimed.code, 'bad_request');
    assert.match(unclaimed.message, /^4 bytes after the inference header belong to no input/);
    assert.equal(pulled, 1, 'only the header was read');

    const tooLong = await refused(chunksOf(body, 3), body.length + 1, body.length);
    assert.match(tooLong.message, /must be an integer from 1 to the body's \d+ bytes/);
    const zero = await refused(chunksOf(body, 3), 0, body.length);
    assert.match(zero.message, /raw binary request .* not supported/);
    const notJson = await refused(chunksOf(body, 3), headerLength - 1, body.length);
    assert.equal(notJson.code, 'invalid_json');
    const missing = await refused(chunksOf(body, 3), headerLength, body.length - 4);
    assert.equal(missing.code, 'invalid_input');
    assert.match(missing.message, /binary_data_size is 16 bytes but only 12 remain/);

    const cut = await refused(chunksOf(body.subarray(0, body.length - 5), 4), headerLength, body.length);
    assert.equal(cut.code, 'bad_request');
    assert.match(cut.message, new RegExp(`ended after ${body.length - 5} of its ${body.length} bytes`));
  });
});

describe('parseInferenceHeaderLength', () => {
  test('reads a decimal byte count, and absence as plain JSON', () => {
    assert.equal(parseInferenceHeaderLength(undefined), undefined);
    assert.equal(parseInferenceHeaderLength('0'), 0);
    assert.equal(parseInferenceHeaderLength('152'), 152);
  });

  test('refuses anything else', () => {
    for (const value of ['', 'abc', '12abc', '-1', ' 12', '1e3', '0x10', '9999999999999999']) {
      assertRefused(() => parseInferenceHeaderLength(value), 'bad_request', /must be a byte count/);
    }
    assertRefused(() => parseInferenceHeaderLength(['1', '2']), 'bad_request', /more than once/);
  });
});

describe('encodeBinaryInferBody', () => {
  test("matches the extension document's example response", () => {
    const output0: Tensor = { datatype: 'FP32', shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) };
    const { body, headerLength } = encodeBinaryInferBody(
      { outputs: [{ name: 'output0', datatype: 'FP32', shape: [3, 2], data: [1, 2, 3, 4, 5, 6] }] },
      [{ name: 'output0', tensor: output0 }],
    );
    assert.deepEqual(JSON.parse(body.subarray(0, headerLength).toString()), {
      outputs: [{ name: 'output0', datatype: 'FP32', shape: [3, 2], parameters: { binary_data_size: 24 } }],
    });
    assert.equal(body.length, headerLength + 24);
    assert.deepEqual(body.subarray(headerLength), tensorToBinary(output0));
  });

  test('bytes follow the order of header.outputs, keep other parameters, and leave JSON outputs alone', () => {
    const header = {
      model_name: 'm',
      model_version: '1',
      outputs: [
        { name: 'b', datatype: 'INT8', shape: [1], data: [-1], parameters: { note: 'kept' } },
        { name: 'json', datatype: 'INT8', shape: [1], data: [5] },
        { name: 'a', datatype: 'BYTES', shape: [1], data: ['hi'] },
      ],
    };
    const before = structuredClone(header);
    const { body, headerLength } = encodeBinaryInferBody(header, [
      { name: 'a', tensor: { datatype: 'BYTES', shape: [1], data: ['hi'] } },
      { name: 'b', tensor: { datatype: 'INT8', shape: [1], data: new Int8Array([-1]) } },
    ]);
    assert.deepEqual(header, before, 'the header passed in is not modified');
    const json = JSON.parse(body.subarray(0, headerLength).toString());
    assert.deepEqual(json.outputs, [
      { name: 'b', datatype: 'INT8', shape: [1], parameters: { note: 'kept', binary_data_size: 1 } },
      { name: 'json', datatype: 'INT8', shape: [1], data: [5] },
      { name: 'a', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 6 } },
    ]);
    assert.equal(json.model_name, 'm');
    assert.deepEqual(body.subarray(headerLength), hex('ff 02000000 6869'));
  });

  test('the header length counts bytes of UTF-8', () => {
    const { body, headerLength } = encodeBinaryInferBody({ outputs: [{ name: 'größe' }] }, [
      { name: 'größe', tensor: { datatype: 'UINT8', shape: [1], data: new Uint8Array([7]) } },
    ]);
    const json = JSON.stringify({
      outputs: [{ name: 'größe', datatype: 'UINT8', shape: [1], parameters: { binary_data_size: 1 } }],
    });
    assert.equal(headerLength, json.length + 2, 'ö and ß take two bytes each');
    assert.equal(body.subarray(0, headerLength).toString(), json);
    assert.deepEqual(body.subarray(headerLength), hex('07'));
  });

  test('a binary output missing from the header, or given twice, is an internal error', () => {
    const tensor: Tensor = { datatype: 'UINT8', shape: [1], data: new Uint8Array([7]) };
    assertRefused(
      () => encodeBinaryInferBody({ outputs: [{ name: 'y' }] }, [{ name: 'x', tensor }]),
      'internal',
      /"x" is not among the body's outputs/,
    );
    assertRefused(
      () =>
        encodeBinaryInferBody({ outputs: [{ name: 'x' }] }, [
          { name: 'x', tensor },
          { name: 'x', tensor },
        ]),
      'internal',
      /"x" is given twice/,
    );
  });
});

describe('wantsBinaryOutput', () => {
  test('per-output binary_data wins; binary_data_output is the default; JSON otherwise', () => {
    const cases: [Record<string, unknown>, boolean][] = [
      [{}, false],
      [{ parameters: { binary_data_output: true } }, true],
      [{ parameters: { binary_data_output: false } }, false],
      [{ outputs: [{ name: 'y', parameters: { binary_data: true } }] }, true],
      [
        {
          outputs: [{ name: 'y', parameters: { binary_data: false } }],
          parameters: { binary_data_output: true },
        },
        false,
      ],
      [
        {
          outputs: [{ name: 'y', parameters: { binary_data: true } }],
          parameters: { binary_data_output: false },
        },
        true,
      ],
      [{ outputs: [{ name: 'y' }], parameters: { binary_data_output: true } }, true],
      [{ outputs: [{ name: 'other', parameters: { binary_data: true } }] }, false],
    ];
    for (const [header, expected] of cases)
      assert.equal(wantsBinaryOutput(header, 'y'), expected, JSON.stringify(header));
  });

  test('flags that are not booleans are refused', () => {
    assertRefused(
      () => wantsBinaryOutput({ outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] }, 'y'),
      'bad_request',
      /output "y": parameters.binary_data must be true or false/,
    );
    assertRefused(
      () => wantsBinaryOutput({ parameters: { binary_data_output: 1 } }, 'y'),
      'bad_request',
      /binary_data_output must be true or false/,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Interop with tritonclient (github.com/triton-inference-server/client, src/python/library/tritonclient/),
// its algorithms re-done here step by step.

/** python-rapidjson's `dumps` with its defaults: compact, and ensure_ascii, so len(str) is its byte count. */
function rapidjsonDumps(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * utils/__init__.py `serialize_byte_tensor`: for each element in row-major order,
 * `flattened_ls.append(struct.pack("<I", len(s))); flattened_ls.append(s)`, then `b"".join(flattened_ls)`.
 */
function serializeByteTensor(elements: Buffer[]): Buffer {
  return Buffer.concat(
    elements.flatMap((s) => {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(s.length); // struct.pack("<I", len(s))
      return [length, s];
    }),
  );
}

interface PythonInferInput {
  name: string;
  shape: number[];
  datatype: string;
  /** `set_data_from_numpy(..., binary_data=True)`: `input_tensor.tobytes()` (BYTES: serialize_byte_tensor). */
  rawData?: Buffer;
  /** `set_data_from_numpy(..., binary_data=False)`: the flat values. */
  data?: unknown[];
}

/**
 * http/_utils.py `_get_inference_request`: each input's `_get_tensor()` (http/_infer_input.py: name, shape,
 * datatype, `parameters` only when non-empty — set_data_from_numpy puts `binary_data_size = len(raw_data)`
 * there — and `data` only without raw data); `outputs` from each `InferRequestedOutput._get_tensor()`
 * (http/_requested_output.py: `{"name", "parameters": {"binary_data": binary_data}}`), or, with no outputs,
 * `parameters["binary_data_output"] = True`; then `request_json = json.dumps(infer_request)`,
 * `json_size = len(request_json)`, and the body is `request_json.encode()` followed by each input's raw data
 * in input order. http/_client.py `infer` sends `json_size` as `Inference-Header-Content-Length`.
 */
function pythonClientRequest(
  inputs: PythonInferInput[],
  outputs: { name: string; binaryData: boolean }[],
): { body: Buffer; jsonSize: number } {
  const inferRequest: Record<string, unknown> = {};
  const parameters: Record<string, unknown> = {};
  inferRequest.inputs = inputs.map((input) => {
    const tensor: Record<string, unknown> = {
      name: input.name,
      shape: input.shape,
      datatype: input.datatype,
    };
    if (input.rawData !== undefined) tensor.parameters = { binary_data_size: input.rawData.length };
    else tensor.data = input.data;
    return tensor;
  });
  if (outputs.length > 0) {
    inferRequest.outputs = outputs.map((output) => ({
      name: output.name,
      parameters: { binary_data: output.binaryData },
    }));
  } else {
    parameters.binary_data_output = true;
  }
  if (Object.keys(parameters).length > 0) inferRequest.parameters = parameters;
  const requestJson = rapidjsonDumps(inferRequest);
  const jsonSize = requestJson.length;
  const requestBody: Buffer[] = [Buffer.from(requestJson)];
  for (const input of inputs) if (input.rawData !== undefined) requestBody.push(input.rawData);
  return { body: Buffer.concat(requestBody), jsonSize };
}

/**
 * http/_infer_result.py `InferResult.__init__` and `as_numpy`: read `header_length` bytes as JSON, then walk
 * `outputs` in order, giving each with `parameters.binary_data_size` the next that many bytes of the rest;
 * BYTES through utils `deserialize_bytes_tensor` (`struct.unpack_from("<I", ...)` then the bytes).
 */
function pythonClientResult(body: Buffer, headerLength: number): Map<string, Buffer | Buffer[] | unknown[]> {
  const result = JSON.parse(body.subarray(0, headerLength).toString());
  const buffer = body.subarray(headerLength);
  const arrays = new Map<string, Buffer | Buffer[] | unknown[]>();
  let bufferIndex = 0;
  for (const output of result.outputs) {
    const size: number | undefined = output.parameters?.binary_data_size;
    if (size === undefined) {
      arrays.set(output.name, output.data);
      continue;
    }
    const bytes = buffer.subarray(bufferIndex, bufferIndex + size);
    bufferIndex += size;
    if (output.datatype !== 'BYTES') {
      arrays.set(output.name, bytes);
      continue;
    }
    const strs: Buffer[] = [];
    let offset = 0;
    while (offset < bytes.length) {
      const l = bytes.readUInt32LE(offset);
      offset += 4;
      strs.push(bytes.subarray(offset, offset + l));
      offset += l;
    }
    arrays.set(output.name, strs);
  }
  return arrays;
}

describe('interop with tritonclient (Python)', () => {
  test('parses a body the real tritonclient produced', () => {
    // Made by the client repository's own http/_infer_input.py, _requested_output.py and _utils.py
    // (`_get_inference_request`, client commit 58a44caa, numpy 2.4.6; the stdlib json module standing in for
    // python-rapidjson, hence the spaces after separators) from: INPUT0 FP32 [[1.5, -2, 0], [3, 4, 5]];
    // TEXT BYTES [b"hello", "wörld", b""]; SCALE INT64 [7] with binary_data=False; MASK BOOL
    // [True, False, False, True]; HALF FP16 [1.0, -2.0]; BIG UINT64 [2**64 - 1, 1];
    // InferRequestedOutput("OUT", binary_data=True). json_size was 611.
    const json =
      '{"inputs": [{"name": "INPUT0", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}, ' +
      '{"name": "TEXT", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": 23}}, ' +
      '{"name": "SCALE", "shape": [1], "datatype": "INT64", "data": [7]}, ' +
      '{"name": "MASK", "shape": [4], "datatype": "BOOL", "parameters": {"binary_data_size": 4}}, ' +
      '{"name": "HALF", "shape": [2], "datatype": "FP16", "parameters": {"binary_data_size": 4}}, ' +
      '{"name": "BIG", "shape": [2], "datatype": "UINT64", "parameters": {"binary_data_size": 16}}], ' +
      '"outputs": [{"name": "OUT", "parameters": {"binary_data": true}}]}';
    const binary =
      '0000c03f000000c00000000000004040000080400000a040' +
      '0500000068656c6c6f0600000077c3b6726c6400000000' +
      '01000001' +
      '003c00c0' +
      'ffffffffffffffff0100000000000000';
    const body = Buffer.concat([Buffer.from(json), hex(binary)]);
    assert.equal(Buffer.byteLength(json), 611);
    const { header, tensors } = parseBinaryInferBody(body, 611);
    const read = (name: string, datatype: Datatype, shape: number[]) =>
      tensorFromBinary(name, datatype, shape, tensors.get(name)!).data;
    assert.deepEqual(read('INPUT0', 'FP32', [2, 3]), new Float32Array([1.5, -2, 0, 3, 4, 5]));
    assert.deepEqual(read('TEXT', 'BYTES', [3]), ['hello', 'wörld', '']);
    assert.deepEqual(read('MASK', 'BOOL', [4]), new Uint8Array([1, 0, 0, 1]));
    assert.deepEqual(read('HALF', 'FP16', [2]), new Uint16Array([0x3c00, 0xc000]));
    assert.deepEqual(read('BIG', 'UINT64', [2]), new BigUint64Array([2n ** 64n - 1n, 1n]));
    assert.equal(tensors.has('SCALE'), false);
    assert.equal(wantsBinaryOutput(header, 'OUT'), true);
  });

  test('a request built as tritonclient builds it parses into the tensors it was built from', () => {
    // INPUT0: np.arange(16, dtype=np.int32).reshape(1, 16); .tobytes() is little-endian on the x86/ARM hosts
    // tritonclient runs on.
    const input0 = Buffer.alloc(64);
    for (let i = 0; i < 16; i++) input0.writeInt32LE(i - 8, i * 4);
    const { body, jsonSize } = pythonClientRequest(
      [
        { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', rawData: input0 },
        { name: 'SCALE', shape: [1], datatype: 'FP32', data: [0.5] },
        // np.array([b"hello", "wörld", b""], dtype=np.object_): str elements are UTF-8 encoded.
        {
          name: 'TEXT_ü',
          shape: [3],
          datatype: 'BYTES',
          rawData: serializeByteTensor([Buffer.from('hello'), Buffer.from('wörld'), Buffer.alloc(0)]),
        },
        { name: 'MASK', shape: [2, 2], datatype: 'BOOL', rawData: Buffer.from([1, 0, 0, 1]) },
      ],
      [
        { name: 'OUTPUT0', binaryData: true },
        { name: 'OUTPUT1', binaryData: false },
      ],
    );
    const headerLength = parseInferenceHeaderLength(String(jsonSize))!;
    const { header, tensors } = parseBinaryInferBody(body, headerLength);
    assert.deepEqual([...tensors.keys()], ['INPUT0', 'TEXT_ü', 'MASK']);
    assert.deepEqual(
      tensorFromBinary('INPUT0', 'INT32', [1, 16], tensors.get('INPUT0')!).data,
      Int32Array.from({ length: 16 }, (_, i) => i - 8),
    );
    assert.deepEqual(tensorFromBinary('TEXT_ü', 'BYTES', [3], tensors.get('TEXT_ü')!).data, [
      'hello',
      'wörld',
      '',
    ]);
    assert.deepEqual(
      tensorFromBinary('MASK', 'BOOL', [2, 2], tensors.get('MASK')!).data,
      new Uint8Array([1, 0, 0, 1]),
    );
    assert.deepEqual((header.inputs as { data?: unknown }[])[1]!.data, [0.5]);
    assert.equal(wantsBinaryOutput(header, 'OUTPUT0'), true);
    assert.equal(wantsBinaryOutput(header, 'OUTPUT1'), false);
  });

  test('without requested outputs tritonclient asks for all of them as binary', () => {
    const { body, jsonSize } = pythonClientRequest(
      [{ name: 'x', shape: [1], datatype: 'FP64', rawData: hex('000000000000f83f') }],
      [],
    );
    const { header, tensors } = parseBinaryInferBody(body, jsonSize);
    assert.equal(wantsBinaryOutput(header, 'anything'), true);
    assert.deepEqual(tensorFromBinary('x', 'FP64', [1], tensors.get('x')!).data, new Float64Array([1.5]));
  });

  test("a response we encode reads back through tritonclient's InferResult algorithm", () => {
    const scores: Tensor = { datatype: 'FP32', shape: [1, 2], data: new Float32Array([0.25, -1.5]) };
    const labels: Tensor = { datatype: 'BYTES', shape: [2], data: ['cat', 'süß'] };
    const { body, headerLength } = encodeBinaryInferBody(
      {
        model_name: 'm',
        outputs: [
          { name: 'labels', datatype: 'BYTES', shape: [2] },
          { name: 'count', datatype: 'INT64', shape: [1], data: [2] },
          { name: 'scores', datatype: 'FP32', shape: [1, 2] },
        ],
      },
      [
        { name: 'scores', tensor: scores },
        { name: 'labels', tensor: labels },
      ],
    );
    const arrays = pythonClientResult(body, headerLength);
    assert.deepEqual(arrays.get('labels'), [Buffer.from('cat'), Buffer.from('süß')]);
    assert.deepEqual(arrays.get('count'), [2]);
    // np.frombuffer(..., dtype=np.float32)
    const raw = arrays.get('scores') as Buffer;
    assert.deepEqual([raw.readFloatLE(0), raw.readFloatLE(4)], [0.25, -1.5]);
  });
});
