// POST /v1/models/{name}[/versions/{v}]/predict: plain JSON for users who think in rows, not tensors.
// `{"inputs": {"x": [[…], …]}}` names tensors; `{"instances": [[…], …]}` is rows of a single-input model.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ModelgateError } from '../../errors.ts';
import type { NamedTensors } from '../../runtime/tensor.ts';
import { inferShape, nestByShape, tensorFromJson, tensorToJson } from '../../runtime/tensor.ts';
import type { ModelSignature } from '../../runtime/signature.ts';
import { principalOf, type HttpDeps } from '../server.ts';
import { parseVersion, parseWith } from '../validation.ts';

const predictBody = z.union([
  z.object({ inputs: z.record(z.string(), z.unknown()) }).strict(),
  z.object({ instances: z.array(z.unknown()).min(1) }).strict(),
]);

function tensorsFromBody(body: z.infer<typeof predictBody>, signature: ModelSignature): NamedTensors {
  let named: Record<string, unknown>;
  if ('instances' in body) {
    if (signature.inputs.length !== 1) {
      throw new ModelgateError(
        'invalid_input',
        `"instances" needs a single-input model; this one takes ${signature.inputs.map((i) => i.name).join(', ')}: use "inputs"`,
      );
    }
    named = { [signature.inputs[0]!.name]: body.instances };
  } else {
    named = body.inputs;
  }
  const tensors: NamedTensors = {};
  for (const [name, data] of Object.entries(named)) {
    const spec = signature.inputs.find((input) => input.name === name);
    if (!spec) {
      throw new ModelgateError(
        'invalid_input',
        `unknown input "${name}"; the model takes ${signature.inputs.map((i) => `"${i.name}"`).join(', ')}`,
        {
          details: { input: name },
        },
      );
    }
    tensors[name] = tensorFromJson(name, spec.datatype, inferShape(data), data);
  }
  return tensors;
}

export function registerPredictRoutes(app: FastifyInstance, { predictor }: HttpDeps): void {
  const handler = async (tenantId: string, name: string, version: number | undefined, rawBody: unknown) => {
    const body = parseWith(predictBody, rawBody);
    const { version: resolved } = predictor.resolve(tenantId, name, version);
    const prediction = await predictor.predict(
      tenantId,
      name,
      resolved.version,
      tensorsFromBody(body, resolved.signature),
    );
    const outputs: Record<string, unknown> = {};
    for (const [outputName, tensor] of Object.entries(prediction.outputs)) {
      outputs[outputName] = nestByShape(tensorToJson(tensor), tensor.shape);
    }
    return { model: name, version: prediction.version.version, outputs };
  };

  app.post<{ Params: { name: string } }>(
    '/v1/models/:name/predict',
    { config: { scope: 'predict' } },
    async (request) => handler(principalOf(request).tenantId, request.params.name, undefined, request.body),
  );
  app.post<{ Params: { name: string; version: string } }>(
    '/v1/models/:name/versions/:version/predict',
    { config: { scope: 'predict' } },
    async (request) => {
      const { name, version } = request.params;
      return handler(principalOf(request).tenantId, name, parseVersion(name, version), request.body);
    },
  );
}
