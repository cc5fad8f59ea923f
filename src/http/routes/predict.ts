// POST /v1/models/{name}[/versions/{v}]/predict: plain JSON for users who think in rows, not tensors.
// `{"inputs": {"x": [[…], …]}}` names tensors; `{"instances": [[…], …]}` is rows of a single-input model.
import type { FastifyInstance } from 'fastify';
import { predictBodySchema, predictionToJson, tensorsFromBody } from '../../serving/predict-body.ts';
import { principalOf, type HttpDeps } from '../context.ts';
import { parseVersion, parseWith } from '../validation.ts';

export function registerPredictRoutes(app: FastifyInstance, { predictor }: HttpDeps): void {
  const handler = async (tenantId: string, name: string, version: number | undefined, rawBody: unknown) => {
    const body = parseWith(predictBodySchema, rawBody);
    const { version: resolved } = predictor.resolve(tenantId, name, version);
    const prediction = await predictor.predict(
      tenantId,
      name,
      resolved.version,
      tensorsFromBody(body, resolved.signature),
    );
    return predictionToJson(name, prediction.version.version, prediction.outputs);
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
