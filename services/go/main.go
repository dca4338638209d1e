// Command vectors calls billing accounts from Go: it runs the shared test vectors
// (tests/vectors/*.json) against the account workflows and checks every answer.
//
//	go run . ../../tests/vectors    # TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, BILLING_TASK_QUEUE
//
// An account is a workflow of type AccountWorkflow with the id account-<account id>. Its
// messages are plain JSON, so the SDK's default data converter is all it takes: start it with
// {account_id, currency}, send commands as updates (answered with an outcome) or signals,
// and read it with the query "state". A closed account's workflow finishes once drained: send
// to it by update- or signal-with-start with the start input {account_id, revive: true}
// (withStartOptions), which revives it from the log to answer "account is closed". Declines and rejections come back as an
// ApplicationError whose Type() says which and whose details hold the outcome.
//
// It prints one line per step and exits 1 on the first answer that differs from the vector,
// 2 when it cannot read the vectors or reach Temporal.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
)

const stepTimeout = 10 * time.Second

func main() {
	dir := "../../tests/vectors"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json")) // sorted, as the other runners
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no vectors in %s", dir)
	}
	if err != nil {
		fail(2, err)
	}
	c, err := client.Dial(client.Options{
		HostPort:  env("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		Namespace: env("TEMPORAL_NAMESPACE", "default"),
		Logger:    log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	})
	if err != nil {
		fail(2, err)
	}
	defer c.Close()
	taskQueue := env("BILLING_TASK_QUEUE", "billing")
	for _, file := range files {
		vector, err := loadVector(file, "go-"+scenarioOf(file)+"-"+randomHex())
		if err != nil {
			fail(2, err)
		}
		for number, step := range vector.Steps {
			got, err := runStep(c, taskQueue, vector.WorkflowID, step)
			if err != nil {
				fail(2, fmt.Errorf("%s step %d (%s): %w", vector.Scenario, number+1, step.About, err))
			}
			if problems := step.mismatches(got); len(problems) > 0 {
				fmt.Printf("FAIL %-10s %2d %-6s %-15s %s\n", vector.Scenario, number+1, step.Kind, step.Name, step.About)
				for _, problem := range problems {
					fmt.Printf("     %s\n", problem)
				}
				fmt.Printf("     got %s\n", got)
				os.Exit(1)
			}
			fmt.Printf("ok   %-10s %2d %-6s %-15s %s\n", vector.Scenario, number+1, step.Kind, step.Name, step.About)
		}
	}
}

// runStep sends one message the way any Go service would. A failed update is an outcome
// (its error type and details); only a failure to deliver the message is an error.
func runStep(c client.Client, taskQueue, workflowID string, step Step) (Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	args := step.args()
	switch step.Kind {
	case "start":
		options := client.StartWorkflowOptions{ID: workflowID, TaskQueue: taskQueue}
		_, err := c.ExecuteWorkflow(ctx, options, step.Name, args...)
		return Outcome{}, err
	case "signal":
		var arg any // the SDK sends exactly one argument; every signal here has one
		if len(args) == 1 {
			arg = args[0]
		}
		return Outcome{}, c.SignalWorkflow(ctx, workflowID, "", step.Name, arg)
	case "query":
		response, err := c.QueryWorkflow(ctx, workflowID, "", step.Name, args...)
		if err != nil {
			return Outcome{}, err
		}
		var result any
		err = response.Get(&result)
		return Outcome{Result: result}, err
	case "signal_with_start":
		if step.Start == nil {
			return Outcome{}, errors.New("signal_with_start without start")
		}
		var arg any
		if len(args) == 1 {
			arg = args[0]
		}
		_, err := c.SignalWithStartWorkflow(ctx, workflowID, step.Name, arg,
			withStartOptions(workflowID, taskQueue), step.Start.Name, step.Start.args()...)
		return Outcome{}, err
	case "update":
		handle, err := c.UpdateWorkflow(ctx, updateOptions(workflowID, step.Name, args))
		return outcomeOf(ctx, handle, err)
	case "update_with_start":
		if step.Start == nil {
			return Outcome{}, errors.New("update_with_start without start")
		}
		start := c.NewWithStartWorkflowOperation(withStartOptions(workflowID, taskQueue),
			step.Start.Name, step.Start.args()...)
		handle, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: start,
			UpdateOptions:          updateOptions(workflowID, step.Name, args),
		})
		return outcomeOf(ctx, handle, err)
	}
	return Outcome{}, fmt.Errorf("unknown step kind %q", step.Kind)
}

// withStartOptions start the account's workflow only when no run of it is running (a closed
// account's run ends once drained): join a running one (USE_EXISTING), start after a finished
// one (ALLOW_DUPLICATE). The start input {"account_id": ..., "revive": true} revives the
// account from the log and never opens one.
func withStartOptions(workflowID, taskQueue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       workflowID,
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
}

func updateOptions(workflowID, name string, args []any) client.UpdateWorkflowOptions {
	return client.UpdateWorkflowOptions{
		WorkflowID:   workflowID,
		UpdateName:   name,
		Args:         args,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
}

// outcomeOf waits for an update's answer. A failed update is an outcome (its error type and
// details); only a failure to deliver it is an error.
func outcomeOf(ctx context.Context, handle client.WorkflowUpdateHandle, err error) (Outcome, error) {
	var result any
	if err == nil {
		err = handle.Get(ctx, &result)
	}
	var refused *temporal.ApplicationError
	if errors.As(err, &refused) {
		outcome := Outcome{ErrorType: refused.Type()}
		if refused.HasDetails() {
			if err := refused.Details(&outcome.Details); err != nil {
				return outcome, err
			}
		}
		return outcome, nil
	}
	return Outcome{Result: result}, err
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func randomHex() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(code)
}
