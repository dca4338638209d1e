/**
 * Reading the vectors and the matching rule (tests/vectors/README.md): every string's
 * ${account_id} becomes a fresh account id; an expected result or error details matches when
 * every field it names is equal in the answer (objects recursively, arrays element by element
 * and of the same length).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const PLACEHOLDER = '${account_id}';

/** One scenario: the steps sent, in order, to one account. */
export interface Vector {
  scenario: string;
  workflow_id: string;
  steps: Step[];
}

/** One message; `payload` absent means no argument. The `*_with_start` kinds carry `start`: the
 * workflow to start if none of that id is running. */
export interface Step {
  about: string;
  kind: 'start' | 'update' | 'signal' | 'query' | 'update_with_start' | 'signal_with_start';
  name: string;
  payload?: unknown;
  start?: { name: string; payload?: unknown };
  expect?: { result?: unknown; error?: { type: string; details?: unknown } };
}

/** What a step came to: a result, or an error type and its first detail. */
export interface Outcome {
  result?: unknown;
  errorType?: string;
  details?: unknown;
}

/** Every vector file in `dir`, in name order (the order the other runners use). */
export function vectorFiles(dir: string): string[] {
  const files = readdirSync(dir).filter((name) => name.endsWith('.json')).sort();
  if (files.length === 0) throw new Error(`no vectors in ${dir}`);
  return files.map((name) => join(dir, name));
}

export function loadVector(path: string, accountId: string): Vector {
  // Substituting in the JSON text is safe: the account id needs no escaping (A-Z a-z 0-9 _ . : -).
  return JSON.parse(readFileSync(path, 'utf8').replaceAll(PLACEHOLDER, accountId)) as Vector;
}

/** Each way `got` differs from what `step` expects; empty when it matches. */
export function mismatches(step: Step, got: Outcome): string[] {
  const expect = step.expect;
  if (expect === undefined) return [];
  if (expect.error !== undefined) {
    if (got.errorType === undefined) return [`expected error ${expect.error.type}, got a result`];
    const problems = got.errorType === expect.error.type
      ? [] : [`error type: expected ${expect.error.type}, got ${got.errorType}`];
    if (expect.error.details !== undefined) problems.push(...differences(expect.error.details, got.details, 'details'));
    return problems;
  }
  if (got.errorType !== undefined) return [`expected a result, got error ${got.errorType}`];
  return differences(expect.result, got.result, 'result');
}

function differences(expected: unknown, actual: unknown, where: string): string[] {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      return [`${where}: expected ${expected.length} items, got ${JSON.stringify(actual)}`];
    }
    return expected.flatMap((want, i) => differences(want, actual[i], `${where}[${i}]`));
  }
  if (isObject(expected)) {
    if (!isObject(actual)) return [`${where}: expected an object, got ${JSON.stringify(actual)}`];
    return Object.entries(expected).flatMap(([key, want]) =>
      key in actual ? differences(want, actual[key], `${where}.${key}`) : [`${where}.${key}: missing`]);
  }
  return expected === actual ? [] : [`${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function show(outcome: Outcome): string {
  return outcome.errorType === undefined
    ? JSON.stringify(outcome.result)
    : `error ${outcome.errorType} ${JSON.stringify(outcome.details)}`;
}
