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
  /** The model's single input and the indexes of the columns that feed it, in order. */
  input: { name: string; features: number[] };
  /** Indexes of the columns copied to every output row, before the predictions. */
  passthrough: number[];
}

export interface PlanOptions {
  /** Column names that feed the model, in order. Default: the numeric columns of the first row. */
  features?: string[];
  /** Column names copied to the output. Default: every column that does not feed the model. */
  passthrough?: string[];
  outputFormat?: BatchFormat;
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

/**
 * The plan for a file with these columns and first row, for a model with one input of shape
 * [batch, width]. Refuses (invalid_input) what cannot work: a model with several inputs, unknown columns,
 * or feature columns that do not add up to the input's width.
 */
export function planBatch(
  signature: ModelSignature,
  inputFormat: BatchFormat,
  columns: string[],
  firstRow: readonly unknown[],
  options: PlanOptions,
): BatchPlan {
  const [spec, ...others] = signature.inputs;
  if (!spec || others.length > 0) {
    throw new ModelgateError(
      'invalid_input',
      `batch runs take models with one input; this one takes ${signature.inputs.map((input) => input.name).join(', ')}`,
    );
  }
  const inner = spec.shape.slice(1);
  const width = inner.every((dim) => typeof dim === 'number')
    ? (inner as number[]).reduce((a, b) => a * b, 1)
    : undefined;
  const features = options.features
    ? columnIndexes(columns, options.features, 'features')
    : columns.map((_, index) => index).filter((index) => isNumeric(firstRow[index]));
  if (width !== undefined && features.length !== width) {
    throw new ModelgateError(
      'invalid_input',
      `input "${spec.name}" takes ${width} values a row; ${options.features ? 'features names' : 'the first row has'} ${features.length} numeric columns: name the ones to use with features`,
      { details: { input: spec.name, width, features: features.map((index) => columns[index]) } },
    );
  }
  const passthrough = options.passthrough
    ? columnIndexes(columns, options.passthrough, 'passthrough')
    : columns.map((_, index) => index).filter((index) => !features.includes(index));
  return {
    inputFormat,
    outputFormat: options.outputFormat ?? inputFormat,
    columns,
    input: { name: spec.name, features },
    passthrough,
  };
}

/** An output row's column names: the pass-through columns, then the prediction columns. */
export function outputColumns(plan: BatchPlan, predictionColumns: readonly string[]): string[] {
  return [...plan.passthrough.map((column) => plan.columns[column]!), ...predictionColumns];
}

/**
 * Appends the model input of one row to `into`; returns why the row cannot be used instead (and appends
 * nothing).
 */
export function readFeatures(plan: BatchPlan, cells: readonly unknown[], into: number[]): string | undefined {
  if (cells.length !== plan.columns.length) {
    return `expected ${plan.columns.length} columns, got ${cells.length}`;
  }
  const start = into.length;
  for (const index of plan.input.features) {
    const cell = cells[index];
    const value =
      typeof cell === 'number' ? cell : typeof cell === 'string' && cell.trim() !== '' ? Number(cell) : NaN;
    if (!Number.isFinite(value)) {
      into.length = start;
      const column = plan.columns[index];
      return cell === null || cell === undefined || cell === ''
        ? `column "${column}": missing value`
        : `column "${column}": not a number: ${JSON.stringify(cell)}`;
    }
    into.push(value);
  }
  return undefined;
}
