package main

// Reading the vectors and the matching rule (tests/vectors/README.md): every string's
// ${account_id} becomes a fresh account id; an expected result or error details matches when
// every field it names is equal in the answer (objects recursively, arrays element by element
// and of the same length). Numbers are compared as float64, exact for every amount the
// vectors use (below 2^53).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

const placeholder = "${account_id}"

// Vector is one scenario: the steps sent, in order, to one account.
type Vector struct {
	Scenario   string `json:"scenario"`
	WorkflowID string `json:"workflow_id"`
	Steps      []Step `json:"steps"`
}

// Step is one message: kind start, update, signal, query, update_with_start or
// signal_with_start (which carry Start); Payload absent means no argument.
type Step struct {
	About   string  `json:"about"`
	Kind    string  `json:"kind"`
	Name    string  `json:"name"`
	Payload *any    `json:"payload"`
	Start   *Start  `json:"start"`
	Expect  *Expect `json:"expect"`
}

// Start is the workflow a *_with_start step starts if none of its id is running.
type Start struct {
	Name    string `json:"name"`
	Payload *any   `json:"payload"`
}

// Expect holds either the expected result (fields to match) or the expected error.
type Expect struct {
	Result any            `json:"result"`
	Error  *ExpectedError `json:"error"`
}

type ExpectedError struct {
	Type    string `json:"type"`
	Details any    `json:"details"`
}

// Outcome is what a step came to: a result, or an error type and its first detail.
type Outcome struct {
	Result    any
	ErrorType string
	Details   any
}

func (o Outcome) String() string {
	if o.ErrorType != "" {
		return fmt.Sprintf("error %s %s", o.ErrorType, jsonText(o.Details))
	}
	return jsonText(o.Result)
}

func loadVector(path, accountID string) (Vector, error) {
	var vector Vector
	data, err := os.ReadFile(path)
	if err != nil {
		return vector, err
	}
	// Substituting in the JSON text is safe: the account id needs no escaping (A-Z a-z 0-9 _ . : -).
	data = []byte(strings.ReplaceAll(string(data), placeholder, accountID))
	if err := json.Unmarshal(data, &vector); err != nil {
		return vector, fmt.Errorf("%s: %w", path, err)
	}
	return vector, nil
}

func scenarioOf(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".json")
}

func (s Step) args() []any { return argsOf(s.Payload) }

func (s Start) args() []any { return argsOf(s.Payload) }

func argsOf(payload *any) []any {
	if payload == nil {
		return nil
	}
	return []any{*payload}
}

// mismatches lists each way got differs from what the step expects; none when it matches.
func (s Step) mismatches(got Outcome) []string {
	switch {
	case s.Expect == nil:
		return nil
	case s.Expect.Error != nil:
		want := s.Expect.Error
		if got.ErrorType == "" {
			return []string{"expected error " + want.Type + ", got a result"}
		}
		var problems []string
		if got.ErrorType != want.Type {
			problems = append(problems, fmt.Sprintf("error type: expected %s, got %s", want.Type, got.ErrorType))
		}
		if want.Details != nil {
			problems = append(problems, differences(want.Details, got.Details, "details")...)
		}
		return problems
	case got.ErrorType != "":
		return []string{"expected a result, got error " + got.ErrorType}
	}
	return differences(s.Expect.Result, got.Result, "result")
}

func differences(expected, actual any, where string) []string {
	switch want := expected.(type) {
	case map[string]any:
		have, ok := actual.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: expected an object, got %s", where, jsonText(actual))}
		}
		var problems []string
		for key, value := range want {
			if got, present := have[key]; present {
				problems = append(problems, differences(value, got, where+"."+key)...)
			} else {
				problems = append(problems, where+"."+key+": missing")
			}
		}
		return problems
	case []any:
		have, ok := actual.([]any)
		if !ok || len(have) != len(want) {
			return []string{fmt.Sprintf("%s: expected %d items, got %s", where, len(want), jsonText(actual))}
		}
		var problems []string
		for i := range want {
			problems = append(problems, differences(want[i], have[i], fmt.Sprintf("%s[%d]", where, i))...)
		}
		return problems
	}
	if !reflect.DeepEqual(expected, actual) {
		return []string{fmt.Sprintf("%s: expected %s, got %s", where, jsonText(expected), jsonText(actual))}
	}
	return nil
}

func jsonText(value any) string {
	text, err := json.Marshal(value)
	if err != nil {
		return fmt.Sprint(value)
	}
	return string(text)
}
