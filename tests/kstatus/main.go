// kstatus reads Kubernetes objects as JSON on stdin (one object, or a List as `kubectl get -o
// json` prints it) and prints, one JSON line per object, the verdict of Flux's and Argo CD's
// status library (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute): Current, InProgress,
// Failed, Terminating, NotFound or Unknown, with its message. The test suite's oracle for what
// GitOps tools make of our objects' status.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// verdict is one output line.
type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("stdin is not a Kubernetes object: %w", err)
	}
	objects := []unstructured.Unstructured{obj}
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			return fmt.Errorf("reading the List: %w", err)
		}
		objects = list.Items
	}
	enc := json.NewEncoder(out)
	for i := range objects {
		o := &objects[i]
		result, err := status.Compute(o)
		if err != nil {
			return fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if err := enc.Encode(verdict{
			Kind:      o.GetKind(),
			Namespace: o.GetNamespace(),
			Name:      o.GetName(),
			Status:    result.Status.String(),
			Message:   result.Message,
		}); err != nil {
			return err
		}
	}
	return nil
}
