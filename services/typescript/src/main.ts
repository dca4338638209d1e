/**
 * Calls billing accounts from TypeScript: runs the shared test vectors (tests/vectors/*.json)
 * against the account workflows and checks every answer.
 *
 *     npm ci && npm run build && node dist/main.js ../../tests/vectors
 *     # TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, BILLING_TASK_QUEUE
 *
 * An account is a workflow of type AccountWorkflow with the id account-<account id>. Its
 * messages are plain JSON, so the SDK's default data converter is all it takes: start it with
 * {account_id, currency}, send commands as updates (answered with an outcome) or signals, and
 * read it with the query "state". Declines and rejections come back as an ApplicationFailure
 * whose `type` says which and whose `details` hold the outcome.
 *
 * It prints one line per step and exits 1 on the first answer that differs from the vector,
 * 2 when it cannot read the vectors or reach Temporal.
 */
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { ApplicationFailure, Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { type Outcome, type Step, loadVector, mismatches, show, vectorFiles } from './vectors';

const STEP_TIMEOUT_MS = 10_000;

async function main(): Promise<number> {
  const files = vectorFiles(process.argv[2] ?? '../../tests/vectors');
  const connection = await Connection.connect({ address: env('TEMPORAL_ADDRESS', '127.0.0.1:7233') });
  try {
    const client = new Client({ connection, namespace: env('TEMPORAL_NAMESPACE', 'default') });
    const taskQueue = env('BILLING_TASK_QUEUE', 'billing');
    for (const file of files) {
      const vector = loadVector(file, `ts-${basename(file, '.json')}-${randomBytes(5).toString('hex')}`);
      for (const [index, step] of vector.steps.entries()) {
        const line = `${vector.scenario.padEnd(10)} ${String(index + 1).padStart(2)} ${step.kind.padEnd(6)} ${step.name.padEnd(15)} ${step.about}`;
        const got = await client.withDeadline(Date.now() + STEP_TIMEOUT_MS, () =>
          runStep(client, taskQueue, vector.workflow_id, step));
        const problems = mismatches(step, got);
        if (problems.length > 0) {
          console.log(`FAIL ${line}`);
          for (const problem of problems) console.log(`     ${problem}`);
          console.log(`     got ${show(got)}`);
          return 1;
        }
        console.log(`ok   ${line}`);
      }
    }
    return 0;
  } finally {
    await connection.close();
  }
}

/** Sends one message the way any TypeScript service would. A failed update is an outcome (its
 * error type and details); only a failure to deliver the message is thrown. */
async function runStep(client: Client, taskQueue: string, workflowId: string, step: Step): Promise<Outcome> {
  const args = step.payload === undefined ? [] : [step.payload];
  const handle = client.workflow.getHandle(workflowId);
  switch (step.kind) {
    case 'start':
      await client.workflow.start(step.name, { workflowId, taskQueue, args });
      return {};
    case 'signal':
      await handle.signal(step.name, ...args);
      return {};
    case 'query':
      return { result: await handle.query(step.name, ...args) };
    case 'update':
      try {
        const result = step.payload === undefined
          ? await handle.executeUpdate(step.name)
          : await handle.executeUpdate(step.name, { args: [step.payload] });
        return { result };
      } catch (error) {
        if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
          return { errorType: error.cause.type ?? undefined, details: error.cause.details?.[0] };
        }
        throw error;
      }
  }
  throw new Error(`unknown step kind ${JSON.stringify(step.kind)}`);
}

function env(name: string, fallback: string): string {
  return process.env[name] || fallback;
}

main().then(
  (code) => { process.exitCode = code; },
  (error: unknown) => {
    console.error('error:', error instanceof Error ? error.message : error);
    process.exitCode = 2;
  },
);
