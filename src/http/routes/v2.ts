// The Open Inference Protocol v2 (REST), as KServe and Triton speak it: health, server and model
// metadata, model readiness, and inference with typed tensors.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { ModelgateError } from '../../errors.ts';
import { DATATYPES } from '../../runtime/signature.ts';
import type { NamedTensors } from '../../runtime/tensor.ts';
import { tensorFromJson, tensorToJson } from '../../runtime/tensor.ts';
import type { ResolvedVersion } from '../../serving/catalog.ts';
import { principalOf, type HttpDeps } from '../context.ts';
import { parseVersion, parseWith } from '../validation.ts';

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
        data: z.unknown(),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string(), parameters })).optional(),
});

type ModelParams = { Params: { name: string; version?: string } };

export function registerV2Routes(app: FastifyInstance, { predictor, isReady }: HttpDeps): void {
  app.get('/v2', async () => ({ name: 'modelgate', version: SERVER_VERSION, extensions: [] }));
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

  const infer = async (
    request: { params: ModelParams['Params']; body: unknown } & Parameters<typeof principalOf>[0],
  ) => {
    const { tenantId } = principalOf(request);
    const body = parseWith(inferRequest, request.body);
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
      inputs[input.name] = tensorFromJson(input.name, input.datatype, input.shape, input.data);
    }
    const prediction = await predictor.predict(tenantId, request.params.name, version.version, inputs);
    const outputs = Object.entries(prediction.outputs)
      .filter(([name]) => !requested || requested.includes(name))
      .map(([name, tensor]) => ({
        name,
        datatype: tensor.datatype,
        shape: tensor.shape,
        data: tensorToJson(tensor),
      }));
    return {
      model_name: prediction.model.name,
      model_version: String(prediction.version.version),
      ...(body.id === undefined ? {} : { id: body.id }),
      outputs,
    };
  };
  app.post<ModelParams>('/v2/models/:name/infer', { config: { scope: 'predict' } }, infer);
  app.post<ModelParams>('/v2/models/:name/versions/:version/infer', { config: { scope: 'predict' } }, infer);
}
