// The command runtime's wire format (docs/runtimes.md, protocol 1): one JSON object per line over a
// program's stdin and stdout. Requests carry tensors as base64 of their little-endian bytes (BYTES as JSON
// strings); answers may use either encoding. A line that is not a protocol message is the caller's to log.
import { ModelgateError } from '../errors.ts';
import { isPlainObject } from '../json.ts';
import { tensorToBinary } from './binary-tensors.ts';
import { checkedOutputs, parseSignature } from './outputs.ts';
import type { ModelSignature, TensorSpec } from './signature.ts';
import { tensorToJson, type NamedTensors } from './tensor.ts';

/** The longest line either side may write, the newline included. */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;
export const PROTOCOL_VERSION = 1;

export type ProgramMessage =
  | { type: 'ready'; signature: ModelSignature | undefined }
  | { type: 'result'; id: string; outputs: unknown }
  | { type: 'error'; id: string; code: string | undefined; message: string };

/** The `infer` line for a request: every tensor but BYTES as base64, which costs a third of JSON text. */
export function inferLine(id: string, inputs: NamedTensors): string {
  const encoded: Record<string, unknown> = {};
  for (const [name, tensor] of Object.entries(inputs)) {
    encoded[name] = {
      datatype: tensor.datatype,
      shape: tensor.shape,
      data:
        tensor.datatype === 'BYTES'
          ? tensorToJson(tensor)
          : { b64: tensorToBinary(tensor).toString('base64') },
    };
  }
  const line = `${JSON.stringify({ type: 'infer', id, inputs: encoded })}\n`;
  if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
    throw new ModelgateError(
      'payload_too_large',
      `the request is over the ${MAX_LINE_BYTES}-byte line limit`,
    );
  }
  return line;
}

/** A line from the program as a protocol message, or undefined when it is not one (a stray print). */
export function parseProgramLine(line: string): ProgramMessage | undefined {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isPlainObject(message)) return undefined;
  if (message.type === 'ready') {
    const protocol = message.protocol ?? PROTOCOL_VERSION;
    if (protocol !== PROTOCOL_VERSION) {
      throw new ModelgateError(
        'invalid_model',
        `the program speaks protocol ${JSON.stringify(protocol)}; this modelgate speaks ${PROTOCOL_VERSION}`,
      );
    }
    return {
      type: 'ready',
      signature: message.signature === undefined ? undefined : signatureOf(message.signature),
    };
  }
  if (typeof message.id !== 'string') return undefined;
  if (message.type === 'result') return { type: 'result', id: message.id, outputs: message.outputs };
  if (message.type === 'error') {
    return {
      type: 'error',
      id: message.id,
      code: typeof message.code === 'string' ? message.code : undefined,
      message: typeof message.message === 'string' ? message.message : 'the model failed',
    };
  }
  return undefined;
}

/** A signature as a program reports it, checked. */
export const signatureOf = (value: unknown): ModelSignature =>
  parseSignature(value, "the program's signature");

/** A result's outputs as tensors: every output of the signature, in either encoding, each checked (`rows` when batched). */
export const outputsOf = (outputs: unknown, specs: readonly TensorSpec[], rows?: number): NamedTensors =>
  checkedOutputs(outputs, specs, rows, { what: "the program's answer", code: 'inference_failed' });

/**
 * Splits a byte stream into lines (without their newline, a `\r` before it dropped), holding at most
 * MAX_LINE_BYTES of one line: a program that writes a longer one has broken the protocol.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** The lines `chunk` completes; throws when a line grows past the limit. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let end = chunk.indexOf(10); end !== -1; end = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, end);
      this.check(piece.length);
      const whole = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.pending = [];
      this.pendingBytes = 0;
      const text = whole.toString('utf8');
      lines.push(text.endsWith('\r') ? text.slice(0, -1) : text);
      start = end + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.check(rest.length);
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
    return lines;
  }

  private check(more: number): void {
    if (this.pendingBytes + more + 1 > MAX_LINE_BYTES) {
      throw new ModelgateError('inference_failed', `the program wrote a line over ${MAX_LINE_BYTES} bytes`);
    }
  }
}
