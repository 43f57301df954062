// Command pulumi-language-python is a small Python language host for the
// Pulumi engine, written for cutover's test machines.
//
// Why it exists: the upstream host's module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not
// served by the Go module proxy this machine can reach, at any version. The
// parts it needs *are* served, in github.com/pulumi/pulumi/sdk/v3: the gRPC
// protocol (proto/go), the Python toolchain code (python/toolchain: pip, uv,
// poetry, virtualenvs) and the Python-side runner script
// (python/cmd/pulumi-language-python-exec), which engines.sh installs next to
// this binary. This program is the glue between them: it speaks the
// LanguageRuntime protocol the engine expects and runs programs through the
// upstream runner, with the upstream conventions (PULUMI_CONFIG,
// PULUMI_CONFIG_SECRET_KEYS, exit code 32 = error already shown).
//
// Implemented: GetPluginInfo, GetRequiredPackages, GetRequiredPlugins, Run,
// InstallDependencies, About, GetProgramDependencies. Everything else
// (code generation, `pulumi new` templating, RunPlugin, Pack, Link) answers
// Unimplemented, which the engine either tolerates or reports clearly.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is stamped by engines.sh with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

const (
	execScript = "pulumi-language-python-exec"
	// The runner exits with 32 after it has shown the user an error message.
	exitErrorShown = 32
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	tracing       string
	execPath      string
}

func main() {
	tracing := flag.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint (passed on to the runner)")
	// Accepted for compatibility with the upstream host's command line; the
	// engine passes runtime options through ProgramInfo instead.
	flag.String("virtualenv", "", "ignored (runtime options arrive through the protocol)")
	flag.String("root", "", "ignored (runtime options arrive through the protocol)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}

	self, err := os.Executable()
	if err == nil {
		if resolved, rerr := filepath.EvalSymlinks(self); rerr == nil {
			self = resolved
		}
	}
	if err != nil {
		fatal(fmt.Errorf("finding own executable: %w", err))
	}
	execPath := filepath.Join(filepath.Dir(self), execScript)
	if _, err := os.Stat(execPath); err != nil {
		fatal(fmt.Errorf("missing runner script %s (install it next to this binary): %w", execPath, err))
	}

	h := &host{tracing: *tracing, execPath: execPath}
	if args := flag.Args(); len(args) > 0 {
		h.engineAddress = args[0]
	}

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fatal(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fatal(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

// options reads the `runtime.options` of Pulumi.yaml (virtualenv, toolchain).
func pythonOptions(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Toolchain:  toolchain.Auto,
	}
	if opts.ProgramDir == "" {
		opts.ProgramDir = opts.Root
	}
	m := map[string]any{}
	if info.GetOptions() != nil {
		m = info.GetOptions().AsMap()
	}
	if v, ok := m["virtualenv"].(string); ok {
		opts.Virtualenv = v
	}
	switch tc, _ := m["toolchain"].(string); tc {
	case "", "auto":
	case "pip":
		opts.Toolchain = toolchain.Pip
	case "uv":
		opts.Toolchain = toolchain.Uv
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	default:
		return opts, fmt.Errorf("unsupported python toolchain %q in runtime options", tc)
	}
	switch tc, _ := m["typechecker"].(string); tc {
	case "", "none":
	default:
		// Type checking before a run is an upstream feature this host leaves out.
		fmt.Fprintf(os.Stderr, "pulumi-language-python: ignoring typechecker %q (not supported by this host)\n", tc)
	}
	return opts, nil
}

func resolve(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	if info == nil {
		return nil, status.Error(codes.InvalidArgument, "missing program info")
	}
	opts, err := pythonOptions(info)
	if err != nil {
		return nil, err
	}
	return toolchain.ResolveToolchain(opts)
}

func withEnv(cmd *exec.Cmd, extra ...string) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, extra...)
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

// findPlugins lists the resource plugins the installed Python packages ask
// for: every distribution that ships a top-level <module>/pulumi-plugin.json
// (as pulumi_kubernetes does), plus pulumi-* distributions without one, whose
// plugin name and version follow from the distribution's own.
const findPluginsPy = `
import importlib.metadata as md, json, re, sys
out, seen = [], set()
for d in md.distributions():
    name = d.metadata["Name"] or ""
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        continue
    seen.add(key)
    found = None
    for f in d.files or []:
        if f.name == "pulumi-plugin.json" and len(f.parts) == 2:
            try:
                found = json.loads(open(d.locate_file(f), encoding="utf-8").read())
            except Exception as e:
                print("cannot read %s: %s" % (d.locate_file(f), e), file=sys.stderr)
            break
    if found is None and not (key.startswith("pulumi-") and key not in ("pulumi-policy",)):
        continue
    out.append({"dist": key, "version": d.version, "plugin": found})
json.dump(out, sys.stdout)
`

type pluginJSON struct {
	Resource         bool   `json:"resource"`
	Name             string `json:"name"`
	Version          string `json:"version"`
	Server           string `json:"server"`
	Parameterization *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Value   string `json:"value"`
	} `json:"parameterization"`
}

var preRelease = strings.NewReplacer("a", "-alpha.", "b", "-beta.", "rc", "-rc.")

func (h *host) packages(ctx context.Context, info *pulumirpc.ProgramInfo) ([]*pulumirpc.PackageDependency, error) {
	tc, err := resolve(info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", findPluginsPy)
	if err != nil {
		return nil, err
	}
	cmd.Dir = info.GetProgramDirectory()
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing Python packages with %s: %w", cmd.Path, err)
	}
	var found []struct {
		Dist    string      `json:"dist"`
		Version string      `json:"version"`
		Plugin  *pluginJSON `json:"plugin"`
	}
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, fmt.Errorf("parsing package list: %w", err)
	}
	var deps []*pulumirpc.PackageDependency
	for _, f := range found {
		p := f.Plugin
		if p == nil {
			// No pulumi-plugin.json: derive the plugin from the package, as
			// upstream does; skip versions that do not map to one (a1234 etc.).
			if strings.ContainsAny(f.Version, "abr+") {
				continue
			}
			p = &pluginJSON{Resource: true, Name: strings.TrimPrefix(f.Dist, "pulumi-"), Version: f.Version}
		}
		if !p.Resource {
			continue
		}
		if p.Name == "" {
			p.Name = strings.TrimPrefix(f.Dist, "pulumi-")
		}
		v := p.Version
		if v == "" {
			v = preRelease.Replace(f.Version)
		}
		if !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		dep := &pulumirpc.PackageDependency{Kind: "resource", Name: p.Name, Version: v, Server: p.Server}
		if pz := p.Parameterization; pz != nil {
			value, err := base64.StdEncoding.DecodeString(pz.Value)
			if err != nil {
				return nil, fmt.Errorf("package %s: bad parameterization value: %w", f.Dist, err)
			}
			dep.Parameterization = &pulumirpc.PackageParameterization{Name: pz.Name, Version: pz.Version, Value: value}
		}
		deps = append(deps, dep)
	}
	return deps, nil
}

func (h *host) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := h.packages(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *host) GetRequiredPlugins(ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := h.packages(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	var plugins []*pulumirpc.PluginDependency
	for _, d := range deps {
		if d.Parameterization != nil {
			continue
		}
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server,
		})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		info = &pulumirpc.ProgramInfo{RootDirectory: req.GetPwd(), ProgramDirectory: req.GetPwd(), EntryPoint: req.GetProgram()}
	}
	tc, err := resolve(info)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	args := []string{"-u", h.execPath}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprint(req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	add("root_directory", info.GetRootDirectory())
	program := req.GetProgram()
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{} // the runner wants a JSON object, never null
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("serializing config: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serializing secret keys: %w", err)
	}
	withEnv(cmd, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secrets))
	cmd.Dir = req.GetPwd()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitErrorShown {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// streamWriter sends a process's output to the engine through the stream.
type streamWriter struct {
	send   func(*pulumirpc.InstallDependenciesResponse) error
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	r := &pulumirpc.InstallDependenciesResponse{Stdout: b}
	if w.stderr {
		r = &pulumirpc.InstallDependenciesResponse{Stderr: b}
	}
	if err := w.send(r); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	info := req.GetInfo()
	if info == nil {
		info = &pulumirpc.ProgramInfo{RootDirectory: req.GetDirectory(), ProgramDirectory: req.GetDirectory()}
	}
	tc, err := resolve(info)
	if err != nil {
		return err
	}
	var out, errw io.Writer = streamWriter{send: server.Send}, streamWriter{send: server.Send, stderr: true}
	ctx := server.Context()
	if err := tc.InstallDependencies(ctx, info.GetProgramDirectory(), req.GetUseLanguageVersionTools(),
		true, out, errw); err != nil {
		return err
	}
	if req.GetIsPlugin() {
		return tc.InstallPackage(ctx, info.GetProgramDirectory(), req.GetUseLanguageVersionTools(), true, out, errw)
	}
	return nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	info := req.GetInfo()
	if info == nil {
		wd, _ := os.Getwd()
		info = &pulumirpc.ProgramInfo{RootDirectory: wd, ProgramDirectory: wd}
	}
	tc, err := resolve(info)
	if err != nil {
		return nil, err
	}
	about, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: about.PythonExecutable,
		Version:    about.PythonVersion.String(),
		Metadata:   map[string]string{"toolchain": about.ToolchainVersion.String(), "host": "cutover " + version},
	}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	pkgs, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	deps := make([]*pulumirpc.DependencyInfo, 0, len(pkgs))
	for _, p := range pkgs {
		deps = append(deps, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}
