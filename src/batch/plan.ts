// How a batch's rows become model inputs and output rows: which columns feed which input, which are
// copied to the output, and the formats. Decided once at submit from the file's header, its first row and
// the model's signature; every part is then read and written by the same plan.
import { ModelgateError } from '../errors.ts';
import type { ModelSignature } from '../runtime/signature.ts';

export const BATCH_FORMATS = ['csv', 'jsonl'] as const;
export type BatchFormat = (typeof BATCH_FORMATS)[number];

export interface BatchPlan {
  inputFormat: BatchFormat;
  outputFormat: BatchFormat;
  /** The input's column names: the CSV header, or the keys of the first JSONL object. */
  columns: string[];
  /** Each model input, in the signature's order, and the indexes of the columns that feed it, in order. */
  inputs: { name: string; features: number[] }[];
  /** Indexes of the columns copied to every output row, before the predictions. */
  passthrough: number[];
}

export interface PlanOptions {
  /** For a model with one input: the column names that feed it, in order (as `inputs` would name them). */
  features?: string[];
  /**
   * Column names that feed each model input, in order. Default: for a model with one input, the numeric
   * columns of the first row; else, when the file has a column named after every input, that column.
   */
  inputs?: Record<string, string[]>;
  /** Column names copied to the output. Default: every column that does not feed the model. */
  passthrough?: string[];
  outputFormat?: BatchFormat;
}

/** Reads `x:a,b;mask:m` (the columns of each input) into { x: ['a', 'b'], mask: ['m'] }; throws if malformed. */
export function parseInputMap(text: string): Record<string, string[]> {
  const inputs: Record<string, string[]> = {};
  for (const entry of text.split(';')) {
    const colon = entry.indexOf(':');
    const name = entry.slice(0, colon).trim();
    const columns = entry
      .slice(colon + 1)
      .split(',')
      .map((column) => column.trim());
    if (colon < 0 || !name || columns.some((column) => column === '') || name in inputs) {
      throw new Error('expected input:column,column;input:column,… with each input once');
    }
    inputs[name] = columns;
  }
  return inputs;
}

const isNumeric = (value: unknown) =>
  typeof value === 'number' ||
  (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)));

function columnIndexes(columns: readonly string[], names: readonly string[], option: string): number[] {
  return names.map((name) => {
    const index = columns.indexOf(name);
    if (index < 0) {
      throw new ModelgateError('invalid_input', `${option}: the file has no column "${name}"`, {
        details: { column: name, columns },
      });
    }
    return index;
  });
}

/** The columns of each input: as given, else the defaults of PlanOptions.inputs. */
function inputColumns(
  signature: ModelSignature,
  columns: readonly string[],
  firstRow: readonly unknown[],
  given: Record<string, string[]> | undefined,
): { name: string; features: number[] }[] {
  const names = signature.inputs.map((input) => input.name);
  if (given) {
    const unknown = Object.keys(given).filter((name) => !names.includes(name));
    const missing = names.filter((name) => !(name in given));
    if (unknown.length > 0 || missing.length > 0) {
      throw new ModelgateError(
        'invalid_input',
        `inputs: the model takes ${names.join(', ')}; name the columns of each, and no other`,
        { details: { inputs: names, unknown, missing } },
      );
    }
    return names.map((name) => ({ name, features: columnIndexes(columns, given[name]!, `inputs ${name}`) }));
  }
  if (names.every((name) => columns.includes(name))) {
    return names.map((name) => ({ name, features: [columns.indexOf(name)] }));
  }
  if (names.length === 1) {
    return [
      {
        name: names[0]!,
        features: columns.map((_, index) => index).filter((index) => isNumeric(firstRow[index])),
      },
    ];
  }
  throw new ModelgateError(
    'invalid_input',
    `the model takes ${names.join(', ')}: name the columns of each (inputs), or give the file a column named after each`,
    { details: { inputs: names, columns } },
  );
}

/**
 * The plan for a file with these columns and first row, for a model whose inputs have shape [batch, …].
 * Refuses (invalid_input) what cannot work: unknown columns or inputs, or columns that do not add up to an
 * input's width.
 */
export function planBatch(
  signature: ModelSignature,
  inputFormat: BatchFormat,
  columns: string[],
  firstRow: readonly unknown[],
  options: PlanOptions,
): BatchPlan {
  const [only, ...others] = signature.inputs;
  if (options.features && options.inputs) {
    throw new ModelgateError('invalid_input', 'give features or inputs, not both');
  }
  if (options.features && (!only || others.length > 0)) {
    throw new ModelgateError(
      'invalid_input',
      `features names the columns of a model's only input; this one takes ${signature.inputs.map((input) => input.name).join(', ')}: use inputs`,
    );
  }
  const given = options.features ? { [only!.name]: options.features } : options.inputs;
  const inputs = inputColumns(signature, columns, firstRow, given);
  for (const [i, spec] of signature.inputs.entries()) {
    const inner = spec.shape.slice(1);
    const width = inner.every((dim) => typeof dim === 'number')
      ? (inner as number[]).reduce((a, b) => a * b, 1)
      : undefined;
    const { features } = inputs[i]!;
    if (width !== undefined && features.length !== width) {
      throw new ModelgateError(
        'invalid_input',
        `input "${spec.name}" takes ${width} values a row; ${given ? 'you named' : 'the first row has'} ${features.length} ${given ? '' : 'numeric '}columns: name the ones to use with features (or inputs)`,
        { details: { input: spec.name, width, features: features.map((index) => columns[index]) } },
      );
    }
  }
  const used = new Set(inputs.flatMap((input) => input.features));
  const passthrough = options.passthrough
    ? columnIndexes(columns, options.passthrough, 'passthrough')
    : columns.map((_, index) => index).filter((index) => !used.has(index));
  return {
    inputFormat,
    outputFormat: options.outputFormat ?? inputFormat,
    columns,
    inputs,
    passthrough,
  };
}

/** An output row's column names: the pass-through columns, then the prediction columns. */
export function outputColumns(plan: BatchPlan, predictionColumns: readonly string[]): string[] {
  return [...plan.passthrough.map((column) => plan.columns[column]!), ...predictionColumns];
}

/**
 * Appends the values of one row for each input to `into` (one array per input, in plan order); returns why
 * the row cannot be used instead (and appends nothing).
 */
export function readFeatures(
  plan: BatchPlan,
  cells: readonly unknown[],
  into: number[][],
): string | undefined {
  if (cells.length !== plan.columns.length) {
    return `expected ${plan.columns.length} columns, got ${cells.length}`;
  }
  const starts = into.map((values) => values.length);
  for (const [i, { features }] of plan.inputs.entries()) {
    for (const index of features) {
      const cell = cells[index];
      const value =
        typeof cell === 'number' ? cell : typeof cell === 'string' && cell.trim() !== '' ? Number(cell) : NaN;
      if (!Number.isFinite(value)) {
        into.forEach((values, k) => (values.length = starts[k]!));
        const column = plan.columns[index];
        return cell === null || cell === undefined || cell === ''
          ? `column "${column}": missing value`
          : `column "${column}": not a number: ${JSON.stringify(cell)}`;
      }
      into[i]!.push(value);
    }
  }
  return undefined;
}
