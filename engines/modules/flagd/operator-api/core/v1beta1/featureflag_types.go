// Package v1beta1 holds the FeatureFlag type of the OpenFeature Operator
// (core.openfeature.dev/v1beta1) as its CRD declares it; see ../../go.mod.
package v1beta1

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of the operator's flag types.
var GroupVersion = schema.GroupVersion{Group: "core.openfeature.dev", Version: "v1beta1"}

var (
	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme registers FeatureFlag and FeatureFlagList with a scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &FeatureFlag{}, &FeatureFlagList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// FeatureFlag is a flag set stored in the API server.
type FeatureFlag struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FeatureFlagSpec   `json:"spec,omitempty"`
	Status FeatureFlagStatus `json:"status,omitempty"`
}

// FeatureFlagSpec holds the flag set.
type FeatureFlagSpec struct {
	FlagSpec FlagSpec `json:"flagSpec,omitempty"`
}

// FlagSpec is flagd's flag-set document: the flags, shared evaluators and
// flag-set metadata (kept as the JSON they are, like the CRD's
// x-kubernetes-preserve-unknown-fields).
type FlagSpec struct {
	Flags      map[string]Flag `json:"flags"`
	Evaluators json.RawMessage `json:"$evaluators,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// Flag is one flag of the set.
type Flag struct {
	State          string          `json:"state"`
	Variants       json.RawMessage `json:"variants"`
	DefaultVariant string          `json:"defaultVariant"`
	Targeting      json.RawMessage `json:"targeting,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

// FeatureFlagStatus is empty, as in the operator.
type FeatureFlagStatus struct{}

// FeatureFlagList is a list of FeatureFlags.
type FeatureFlagList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FeatureFlag `json:"items"`
}

// DeepCopyObject implements runtime.Object (through JSON: these are small).
func (in *FeatureFlag) DeepCopyObject() runtime.Object {
	out := &FeatureFlag{}
	deepCopyJSON(in, out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *FeatureFlagList) DeepCopyObject() runtime.Object {
	out := &FeatureFlagList{}
	deepCopyJSON(in, out)
	return out
}

func deepCopyJSON(in, out any) {
	b, err := json.Marshal(in)
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
}
