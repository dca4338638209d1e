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
 * read it with the query "state". A closed account's workflow finishes once drained: send to it
 * by update- or signal-with-start with the start input {account_id, revive: true} (withStart),
 * which revives it from the log to answer "account is closed". Declines and rejections come back as an ApplicationFailure
 * whose `type` says which and whose `details` hold the outcome.
 *
 * It prints one line per step and exits 1 on the first answer that differs from the vector,
 * 2 when it cannot read the vectors or reach Temporal.
 */
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import {
  ApplicationFailure, Client, Connection, WithStartWorkflowOperation, WorkflowUpdateFailedError,
} from '@temporalio/client';
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
    case 'signal_with_start': {
      const start = withStart(step, workflowId, taskQueue);
      await client.workflow.signalWithStart(start.name, { ...start.options, signal: step.name, signalArgs: args });
      return {};
    }
    case 'query':
      return { result: await handle.query(step.name, ...args) };
    case 'update':
      return await outcomeOf(() => step.payload === undefined  // the SDK types zero and one argument apart
        ? handle.executeUpdate(step.name)
        : handle.executeUpdate(step.name, { args: [step.payload] }));
    case 'update_with_start': {
      const start = withStart(step, workflowId, taskQueue);
      const startWorkflowOperation = new WithStartWorkflowOperation(start.name, start.options);
      return await outcomeOf(() => client.workflow.executeUpdateWithStart(step.name, { args, startWorkflowOperation }));
    }
  }
  throw new Error(`unknown step kind ${JSON.stringify(step.kind)}`);
}

/** How a `*_with_start` step starts the account's workflow if no run of it is running (a closed
 * account's run ends once drained): join a running one (USE_EXISTING), start after a finished one
 * (ALLOW_DUPLICATE). The start input {account_id, revive: true} revives the account from the log
 * and never opens one. */
function withStart(step: Step, workflowId: string, taskQueue: string) {
  if (step.start === undefined) throw new Error(`${step.kind} without start`);
  const args = step.start.payload === undefined ? [] : [step.start.payload];
  return {
    name: step.start.name,
    options: {
      workflowId, taskQueue, args,
      workflowIdConflictPolicy: 'USE_EXISTING' as const,
      workflowIdReusePolicy: 'ALLOW_DUPLICATE' as const,
    },
  };
}

async function outcomeOf(update: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { result: await update() };
  } catch (error) {
    if (error instanceof WorkflowUpdateFailedError && error.cause instanceof ApplicationFailure) {
      return { errorType: error.cause.type ?? undefined, details: error.cause.details?.[0] };
    }
    throw error;
  }
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
