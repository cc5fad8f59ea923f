// The body of a plain-JSON prediction, as POST /v1/models/{name}/predict and async jobs take it:
// `{"inputs": {"x": [[…], …]}}` names tensors; `{"instances": [[…], …]}` is rows of a single-input model.
// And the answer's outputs, nested by shape.
import { z } from 'zod';
import { ModelgateError } from '../errors.ts';
import type { ModelSignature } from '../runtime/signature.ts';
import type { NamedTensors } from '../runtime/tensor.ts';
import { inferShape, nestByShape, shapeMismatch, tensorFromJson, tensorToJson } from '../runtime/tensor.ts';

export const predictBodySchema = z.union([
  z.object({ inputs: z.record(z.string(), z.unknown()) }).strict(),
  z.object({ instances: z.array(z.unknown()).min(1) }).strict(),
]);
export type PredictBody = z.infer<typeof predictBodySchema>;

export function tensorsFromBody(body: PredictBody, signature: ModelSignature): NamedTensors {
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
    const shape = inferShape(data);
    // Before the data is walked: nesting deeper (or shallower) than the model's rank is refused at once.
    if (spec.shape.length > 0 && shape.length !== spec.shape.length) throw shapeMismatch(spec, shape);
    tensors[name] = tensorFromJson(name, spec.datatype, shape, data);
  }
  return tensors;
}

/** The answer of a prediction: `{"model", "version", "outputs": {name: nested values}}`. */
export function predictionToJson(model: string, version: number, outputs: NamedTensors) {
  const json: Record<string, unknown> = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    json[name] = nestByShape(tensorToJson(tensor), tensor.shape);
  }
  return { model, version, outputs: json };
}
