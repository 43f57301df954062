// Command pulumi-resource-kubernetes is upstream's
// provider/cmd/pulumi-resource-kubernetes/main.go, rebuilt outside the
// repository: upstream embeds schema-embed.json and
// terraform-mapping-embed.json, which its `go generate` step writes from
// schema.json and terraform-mapping.json (adding the version). engines.sh
// performs that step into this directory before `go build`.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
