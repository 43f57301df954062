// The OpenFeature Operator's API types (core.openfeature.dev/v1beta1), which
// flagd/core's Kubernetes sync decodes a FeatureFlag into. The operator's own
// module, github.com/open-feature/open-feature-operator/api, is not served by
// the module proxy here (every version: "This module version is not
// available"), so ../go.mod replaces it with this one: the same package path
// and the same Go names flagd/core uses (GroupVersion, AddToScheme,
// FeatureFlag, FeatureFlagSpec, FlagSpec), fields as the operator's CRD
// declares them (tests/schemas/crd-openfeature-featureflags.yaml, flag and
// flag-set metadata included).
module github.com/open-feature/open-feature-operator/api

go 1.25.0

require k8s.io/apimachinery v0.33.2

require (
	github.com/fxamacker/cbor/v2 v2.7.0 // indirect
	github.com/go-logr/logr v1.4.2 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	golang.org/x/net v0.38.0 // indirect
	golang.org/x/text v0.23.0 // indirect
	gopkg.in/inf.v0 v0.9.1 // indirect
	k8s.io/klog/v2 v2.130.1 // indirect
	k8s.io/utils v0.0.0-20241104100929-3ea5e8cea738 // indirect
	sigs.k8s.io/json v0.0.0-20241010143419-9aa6b5e7a4b3 // indirect
	sigs.k8s.io/randfill v1.0.0 // indirect
	sigs.k8s.io/structured-merge-diff/v4 v4.6.0 // indirect
	sigs.k8s.io/yaml v1.4.0 // indirect
)
