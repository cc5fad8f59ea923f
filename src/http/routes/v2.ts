// The Open Inference Protocol v2 (REST), as KServe and Triton speak it: health, server and model
// metadata, model readiness, and inference with typed tensors, in JSON or with Triton's binary tensor
// data extension (a JSON header, then raw tensor bytes).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ModelgateError } from '../../errors.ts';
import {
  BINARY_CONTENT_TYPE,
  encodeBinaryInferBody,
  INFERENCE_HEADER_CONTENT_LENGTH,
  parseBinaryInferBody,
  parseInferenceHeaderLength,
  readBinaryInferBody,
  tensorFromBinary,
  type BinaryInferBody,
  wantsBinaryOutput,
} from '../../runtime/binary-tensors.ts';
import { DATATYPES } from '../../runtime/signature.ts';
import type { NamedTensors } from '../../runtime/tensor.ts';
import { tensorFromJson, tensorToJson } from '../../runtime/tensor.ts';
import type { ResolvedVersion } from '../../serving/catalog.ts';
import { principalOf, type HttpDeps } from '../context.ts';
import { jsonBodyReader, parseVersion, parseWith } from '../validation.ts';

const SERVER_VERSION = '0.1.0';

const parameters = z.record(z.string(), z.unknown()).optional();
const inferRequest = z.object({
  id: z.string().optional(),
  parameters,
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int().min(0)),
        datatype: z.enum(DATATYPES),
        parameters,
        // Absent when the input's bytes follow the header (parameters.binary_data_size).
        data: z.unknown().optional(),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string(), parameters })).optional(),
});

type ModelParams = { Params: { name: string; version?: string } };

/**
 * The request's JSON and the raw bytes of its binary inputs. With Inference-Header-Content-Length the body
 * is the binary extension's, whatever its content type (tritonclient's Python client sends none); without
 * it, JSON: parsed already when sent as application/json, else (text/plain, or no content type, as Triton
 * takes it) parsed here. Other content types are refused.
 */
function readInferBody(
  request: FastifyRequest,
  parseJson: (request: FastifyRequest, text: string) => unknown,
): {
  json: unknown;
  binary: Map<string, Buffer>;
  owned: boolean;
} {
  const headerLength = parseInferenceHeaderLength(request.headers[INFERENCE_HEADER_CONTENT_LENGTH]);
  const { body } = request;
  if (headerLength !== undefined) {
    if (body instanceof StreamedBinaryBody) {
      return { json: body.read.header, binary: body.read.tensors, owned: body.read.owned };
    }
    if (!Buffer.isBuffer(body)) {
      throw new ModelgateError(
        'unsupported_media_type',
        `a body with ${INFERENCE_HEADER_CONTENT_LENGTH} is sent as ${BINARY_CONTENT_TYPE} or without a content type`,
      );
    }
    const { header, tensors, owned } = parseBinaryInferBody(body, headerLength);
    return { json: header, binary: tensors, owned };
  }
  if (typeof body !== 'string' && !Buffer.isBuffer(body)) {
    return { json: body, binary: new Map(), owned: false };
  }
  if (Buffer.isBuffer(body) && request.headers['content-type'] !== undefined) {
    throw new ModelgateError(
      'unsupported_media_type',
      `send JSON as application/json, or binary tensors with ${INFERENCE_HEADER_CONTENT_LENGTH}`,
    );
  }
  return { json: parseJson(request, body.toString()), binary: new Map(), owned: false };
}

/** A binary body read as it arrived (readBinaryInferBody): its own type, so no JSON body can pass for it. */
class StreamedBinaryBody {
  constructor(readonly read: BinaryInferBody) {}
}

/**
 * A /v2 infer body that no other parser takes, within `limitBytes`: with Inference-Header-Content-Length
 * and a Content-Length, binary tensors read straight into buffers of their own as they arrive; otherwise
 * (JSON as text/plain or without a content type, or a chunked binary body) the whole body as bytes.
 */
async function readRawInferBody(
  request: FastifyRequest,
  payload: AsyncIterable<Buffer>,
  limitBytes: number,
): Promise<Buffer | StreamedBinaryBody> {
  const tooLarge = () =>
    new ModelgateError('payload_too_large', `the body is larger than the limit of ${limitBytes} bytes`);
  const declared = request.headers['content-length'];
  const length = declared === undefined ? undefined : Number(declared);
  if (length !== undefined && length > limitBytes) throw tooLarge();
  const headerLength = parseInferenceHeaderLength(request.headers[INFERENCE_HEADER_CONTENT_LENGTH]);
  if (headerLength !== undefined && length !== undefined && Number.isSafeInteger(length)) {
    return new StreamedBinaryBody(await readBinaryInferBody(payload, headerLength, length));
  }
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of payload) {
    received += chunk.length;
    if (received > limitBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, received);
}

export function registerV2Routes(app: FastifyInstance, { predictor, isReady, config }: HttpDeps): void {
  // JSON sent as text/plain or without a content type is read as application/json is.
  const parseJson = jsonBodyReader(app);
  // The extensions it speaks: Triton's binary tensor data (see binary-tensors.ts).
  app.get('/v2', async () => ({
    name: 'modelgate',
    version: SERVER_VERSION,
    extensions: ['binary_tensor_data'],
  }));
  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_request, reply) =>
    reply.status(isReady() ? 200 : 503).send({ ready: isReady() }),
  );

  const resolve = (tenantId: string, params: ModelParams['Params']): ResolvedVersion =>
    predictor.resolve(
      tenantId,
      params.name,
      params.version === undefined ? undefined : parseVersion(params.name, params.version),
    );

  const metadata = async (request: { params: ModelParams['Params'] } & Parameters<typeof principalOf>[0]) => {
    const { tenantId } = principalOf(request);
    const { model, version } = resolve(tenantId, request.params);
    return {
      name: model.name,
      // Per the protocol: every version that may be requested explicitly, not only the one described.
      versions: predictor.versionNumbers(tenantId, model.name).map(String),
      platform: predictor.platformOf(version),
      inputs: version.signature.inputs,
      outputs: version.signature.outputs,
    };
  };
  app.get<ModelParams>('/v2/models/:name', { config: { scope: 'read' } }, metadata);
  app.get<ModelParams>('/v2/models/:name/versions/:version', { config: { scope: 'read' } }, metadata);

  // Per the protocol, readiness is in the status code: 200 ready, 4xx not (the model is still loading).
  const ready = async (
    request: { params: ModelParams['Params'] } & Parameters<typeof principalOf>[0],
    reply: FastifyReply,
  ) => {
    const { model, version } = resolve(principalOf(request).tenantId, request.params);
    const isLoaded = predictor.isLoaded(version);
    return reply
      .status(isLoaded ? 200 : 400)
      .send({ name: model.name, version: String(version.version), ready: isLoaded });
  };
  app.get<ModelParams>('/v2/models/:name/ready', { config: { scope: 'read' } }, ready);
  app.get<ModelParams>('/v2/models/:name/versions/:version/ready', { config: { scope: 'read' } }, ready);

  const infer = async (request: FastifyRequest<ModelParams>, reply: FastifyReply) => {
    const { tenantId } = principalOf(request);
    const { json, binary, owned } = readInferBody(request, parseJson);
    const body = parseWith(inferRequest, json);
    const { version } = resolve(tenantId, request.params);
    const requested = body.outputs?.map((output) => output.name);
    for (const name of requested ?? []) {
      if (!version.signature.outputs.some((output) => output.name === name)) {
        throw new ModelgateError('invalid_input', `unknown output "${name}"`, { details: { output: name } });
      }
    }
    const inputs: NamedTensors = {};
    for (const input of body.inputs) {
      if (Object.hasOwn(inputs, input.name))
        throw new ModelgateError('invalid_input', `input "${input.name}" is given twice`);
      const bytes = binary.get(input.name);
      inputs[input.name] =
        bytes === undefined
          ? tensorFromJson(input.name, input.datatype, input.shape, input.data)
          : tensorFromBinary(input.name, input.datatype, input.shape, bytes, owned);
    }
    const prediction = await predictor.predict(tenantId, request.params.name, version.version, inputs);
    const header = json as Record<string, unknown>;
    const returned = Object.entries(prediction.outputs).filter(
      ([name]) => !requested || requested.includes(name),
    );
    const binaryOutputs = returned
      .filter(([name]) => wantsBinaryOutput(header, name))
      .map(([name, tensor]) => ({ name, tensor }));
    const answer = {
      model_name: prediction.model.name,
      model_version: String(prediction.version.version),
      ...(body.id === undefined ? {} : { id: body.id }),
      outputs: returned.map(([name, tensor]) => ({
        name,
        datatype: tensor.datatype,
        shape: tensor.shape,
        ...(binaryOutputs.some((output) => output.name === name) ? {} : { data: tensorToJson(tensor) }),
      })),
    };
    if (binaryOutputs.length === 0) return answer;
    const encoded = encodeBinaryInferBody(answer, binaryOutputs);
    return reply
      .header(INFERENCE_HEADER_CONTENT_LENGTH, String(encoded.headerLength))
      .type(BINARY_CONTENT_TYPE)
      .send(encoded.body);
  };
  // Their own scope: any content type, or none, reaches the route as bytes, which readInferBody reads.
  void app.register(async (scope) => {
    scope.removeContentTypeParser('application/octet-stream');
    scope.addContentTypeParser('*', (request, payload, done) => {
      readRawInferBody(request, payload, config.bodyLimitBytes).then(
        (body) => done(null, body),
        (error: Error) => {
          payload.resume(); // what was not read yet, so the connection can serve the next request
          done(error);
        },
      );
    });
    scope.post<ModelParams>('/v2/models/:name/infer', { config: { scope: 'predict' } }, infer);
    scope.post<ModelParams>(
      '/v2/models/:name/versions/:version/infer',
      { config: { scope: 'predict' } },
      infer,
    );
  });
}
